"""Crosswalk: curated record → Figshare article JSON (``POST /v2/account/articles``).

Figshare identifies licences by a per-account number; pass the list from
``GET /v2/account/licenses`` as ``licences`` and the record's SPDX licence is
matched by its URL or name.
"""

from __future__ import annotations

from typing import Any

from curated.metadata.crosswalk.common import (
    as_dict,
    display_name,
    licence,
    normalise_doi,
    normalise_orcid,
)
from curated.metadata.view import record_view


def licence_id(spdx: str | None, licences: list[dict[str, Any]] | None) -> int | None:
    lic = licence(spdx)
    if not lic or not licences:
        return None
    want_url = lic.url.removesuffix("legalcode").rstrip("/").replace("http://", "https://")
    for item in licences:
        url = str(item.get("url") or "").rstrip("/").replace("http://", "https://")
        if url == want_url or url.removesuffix("/legalcode") == want_url:
            return int(item["value"])
    for item in licences:
        name = str(item.get("name") or "").replace(" ", "-").lower()
        if name == lic.spdx_id.lower():
            return int(item["value"])
    return None


def to_figshare(
    record: Any, *, licences: list[dict[str, Any]] | None = None, today: str | None = None
) -> dict[str, Any]:
    """The Figshare article body for ``record``."""
    rec = record_view(as_dict(record))
    study = rec.study
    authors = []
    for a in study.authors:
        entry: dict[str, Any] = {"name": display_name(a)}
        orcid = normalise_orcid(a.orcid)
        if orcid:
            entry["orcid_id"] = orcid.rsplit("/", 1)[-1]
        authors.append(entry)
    art: dict[str, Any] = {
        "title": study.title or "",
        "description": study.description or "",
        "authors": authors,
        "defined_type": "dataset",
    }
    keywords = [k for k in study.keywords if k]
    for sample in rec.biosamples:
        name = sample.organism.scientific_name
        if name and name not in keywords:
            keywords.append(name)
    if keywords:
        art["keywords"] = keywords
    lic_id = licence_id(study.license, licences)
    if lic_id is not None:
        art["license"] = lic_id
    funding = [
        {"title": f"{g.funder} {g.award_id or ''}".strip()} for g in study.funding if g.funder
    ]
    if funding:
        art["funding_list"] = funding
    refs = [
        f"https://doi.org/{doi}" for pub in study.publications if (doi := normalise_doi(pub.doi))
    ]
    refs += [
        r.identifier
        for r in study.related_identifiers
        if r.identifier and r.identifier.startswith(("http://", "https://"))
    ]
    if refs:
        art["references"] = refs
    # No ``timeline``: its dates are Figshare's own (first online = publication) and an
    # embargo has its own endpoint; a release date is not something to send here.
    return art


PUBLISH_FIELDS = ("title", "description", "authors", "keywords", "license", "categories")
"""What Figshare requires before an article can be published (help.figshare.com
``article/figshare-metadata-schema-overview``: title, authors, item type, categories,
keywords, description, licence)."""
MAX_ITEMS = 100
"""At most 100 authors, categories and keywords per item (same page)."""
MAX_KEYWORD = 2000
DESCRIPTION_LIMITS = (4, 10_000)
MAX_AUTHORS = 10
"""Article create/update take at most this many authors; the rest go through
``POST /account/articles/{id}/authors`` (figshare swagger ``AuthorsCreator``)."""

# Broad categories tried, in order, when none of the record's terms names an account
# category (Figshare's categories are the ANZSRC 2020 fields of research).
FALLBACK_CATEGORIES = (
    "microscopy",
    "cell neuroscience",
    "neurosciences",
    "cell development, proliferation and death",
    "cellular interactions",
    "biological sciences",
)


def pick_categories(record: Any, categories: list[dict[str, Any]] | None) -> list[int]:
    """Category ids for ``record`` from an account's category list (``GET /account/categories``).

    A category whose title equals one of the record's keywords, imaging method or
    organism wins; else the first of :data:`FALLBACK_CATEGORIES` the account has.
    """
    if not categories:
        return []
    rec = record_view(as_dict(record))
    terms = [k for k in rec.study.keywords if k]
    terms.append(rec.dataset.imaging_method_name or "")
    terms += [sample.organism.scientific_name or "" for sample in rec.biosamples]
    wanted = {t.strip().lower() for t in terms if t.strip()}
    by_title: dict[str, int] = {}
    for c in categories:
        title = str(c.get("title") or "").strip().lower()
        if title and c.get("id") is not None:
            by_title.setdefault(title, int(c["id"]))
    found = [by_title[t] for t in sorted(wanted) if t in by_title]
    if not found:
        found = [by_title[t] for t in FALLBACK_CATEGORIES if t in by_title][:1]
    return found[:3]


def publication_problems(article: dict[str, Any]) -> list[str]:
    """Why Figshare would refuse to publish ``article`` ("Missing mandatory field for publication")."""
    out = []
    desc = str(article.get("description") or "")
    lo, hi = DESCRIPTION_LIMITS
    if not lo <= len(desc) <= hi:
        out.append(f"a description of {lo}-{hi:,} characters (it has {len(desc):,})")
    keywords = article.get("keywords") or article.get("tags") or []
    if not keywords:
        out.append("at least one keyword")
    elif len(keywords) > MAX_ITEMS or any(len(str(k)) > MAX_KEYWORD for k in keywords):
        out.append(f"at most {MAX_ITEMS} keywords of at most {MAX_KEYWORD} characters each")
    if article.get("license") in (None, ""):
        out.append("a licence the account offers")
    if not article.get("categories"):
        out.append("at least one category")
    if not article.get("authors"):
        out.append("at least one author")
    return out


def missing_required(record: Any) -> list[str]:
    """Record fields Figshare requires before publishing that are empty."""
    study = record_view(as_dict(record)).study
    missing = []
    if len(study.title or "") < 3:
        missing.append("study.title")
    if not study.description:
        missing.append("study.description")
    if not study.authors:
        missing.append("study.authors")
    return missing
