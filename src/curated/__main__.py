from curated.cli import main

main()
