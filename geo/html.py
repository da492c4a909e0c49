"""Small HTML pages for people who open the API in a browser."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import Request

STYLE = ("body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
         "color:#222}a{color:#0b5cad}code{background:#f3f3f3;padding:0 .2rem}"
         "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}")


def wants_html(request: Request, f: str | None) -> bool:
    """Whether to answer with HTML: `?f=html`, or a browser that prefers HTML to JSON."""
    if f is not None:
        return f == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "json" not in accept.split("text/html")[0]


def page(title: str, body: str) -> str:
    """A complete HTML page with a title and an already-escaped body."""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>")


def link_list(links: list[dict[str, Any]]) -> str:
    """An HTML list of OGC links."""
    items = "".join(
        f'<li><a href="{escape(str(ln["href"]))}">{escape(str(ln.get("title") or ln["rel"]))}</a> '
        f'<small>({escape(str(ln["rel"]))}, {escape(str(ln.get("type", "")))})</small></li>'
        for ln in links)
    return f"<ul>{items}</ul>"
