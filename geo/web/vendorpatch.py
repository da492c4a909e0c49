"""The changes made to two vendored map plugins, as code, to re-apply after updating them.

`python -m geo.web.vendorpatch` patches the files under geo/static/vendor/ in place (once: a patched
file starts with PATCHED and is left alone). Why (see geo/static/vendor/README.md):

- leaflet-search 2.9.7 inserted each suggestion with `innerHTML`: project names ran as HTML.
- leaflet-measure 2.1.7 compiles its five underscore templates in the browser with `new Function`,
  which a Content-Security-Policy without 'unsafe-eval' forbids: they are compiled here instead. It also
  hides its panels with a style attribute, which a policy without 'unsafe-inline' styles ignores: it
  sets the style property instead. For axe-core (tests/test_a11y.py), its start prompt's link gets the
  list item its list lacked, and its h3 titles are level-2 headings (the map's h1 has no h2 before them).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[1] / "static" / "vendor"
SEARCH = VENDOR / "leaflet-search-2.9.7" / "dist" / "leaflet-search.min.js"
MEASURE = VENDOR / "leaflet-measure-2.1.7" / "dist" / "leaflet-measure.min.js"
MARK = "/* PATCHED"

SEARCH_NOTE = ("/* PATCHED for this service (see ../../README.md): _createTip and showAlert set\n"
               " * textContent instead of innerHTML, so a searched name is shown as text and never parsed as "
               "HTML. */\n")
MEASURE_NOTE = ("/* PATCHED for this service (see ../../README.md and geo/web/vendorpatch.py): the "
                "five\n * underscore templates are precompiled functions, so the plugin needs no "
                "'unsafe-eval', and panels\n * are hidden through the style property, not a style "
                "attribute. For accessibility, the start prompt's link is in a list\n * item and the "
                "titles (h3) are level-2 headings. */\n")
# The last two (accessibility, axe-core's rule `list`, serious): the start prompt's link sits in its
# list without a list item.
MEASURE_FIXES = (('a.setAttribute("style","display:none;")', 'a.style.display="none"'),
                 ('<ul class=\\"tasks\\">\\n      <a href=', '<ul class=\\"tasks\\">\\n      <li><a href='),
                 ('</a>\\n    </ul>\\n  </div>\\n  <div class=\\"js-measuringprompt',
                  '</a></li>\\n    </ul>\\n  </div>\\n  <div class=\\"js-measuringprompt'))
# Its panels' and popups' titles are h3 elements: level-2 headings under the page's h1 (axe-core:
# heading-order), with the tag, so the plugin's styles, kept.
MEASURE_HEADING = ("<h3>", '<h3 aria-level=\\"2\\">', 5)
SEARCH_FIXES = (('d=a.DomUtil.create("li",""),d.innerHTML=b', 'd=a.DomUtil.create("li",""),d.textContent=b'),
                ("this._alert.innerHTML=a", "this._alert.textContent=a"))

# underscore's default delimiters, tried in its order: escape, interpolate, evaluate.
_TAGS = re.compile(r"<%-([\s\S]+?)%>|<%=([\s\S]+?)%>|<%([\s\S]+?)%>")
_JS_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "'": "'", '"': '"', "\\": "\\", "/": "/", "b": "\b",
               "f": "\f", "v": "\v", "0": "\0"}
# The variables leaflet-measure's templates read (it calls them with {model, i18n[, humanize]}).
MEASURE_NAMES = ("model", "i18n", "humanize")


def compile_template(text: str, names: tuple[str, ...]) -> str:
    """An underscore template (`<%= expr %>`, `<% code %>`) as the source of a JS function of `obj`
    that renders it, like `_.template(text)` but without `with` and without compiling at run time."""
    parts = [f"var {','.join(f'{n}=obj.{n}' for n in names)},__t,__p='';"]
    at = 0
    for match in _TAGS.finditer(text):
        if match.group(1) is not None:
            raise ValueError("<%- %> (escaping) is not supported")  # leaflet-measure has none
        parts.append(f"__p+={json.dumps(text[at:match.start()])};")
        if match.group(2) is not None:
            parts.append(f"__p+=((__t=({match.group(2)}))==null?'':__t);")
        else:
            parts.append(f"\n{match.group(3)}\n")
        at = match.end()
    parts.append(f"__p+={json.dumps(text[at:])};return __p;")
    return "(function(obj){" + "".join(parts) + "})"


def _js_string(source: str, start: int) -> tuple[str, int]:
    """The value of the single-quoted JS string literal at `source[start]`, and the index after it."""
    assert source[start] == "'"
    out: list[str] = []
    i = start + 1
    while source[i] != "'":
        char = source[i]
        if char == "\\":
            code = source[i + 1]
            if code == "u":
                out.append(chr(int(source[i + 2:i + 6], 16)))
                i += 6
                continue
            if code == "x":
                out.append(chr(int(source[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append(_JS_ESCAPES.get(code, code))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out), i + 1


def patch_measure(source: str, call: str = "c.template(") -> str:
    """leaflet-measure's code with each `c.template('...')` replaced by the compiled function, and its
    panels hidden through the style property."""
    pieces: list[str] = []
    at = 0
    while (found := source.find(call + "'", at)) >= 0:
        text, end = _js_string(source, found + len(call))
        if source[end] != ")":
            raise ValueError(f"unexpected template call at {found}")
        pieces.append(source[at:found])
        pieces.append(compile_template(text, MEASURE_NAMES))
        at = end + 1
    if not pieces:
        raise ValueError("no template call found")
    patched = _replace_once("".join(pieces) + source[at:], MEASURE_FIXES)
    old, new, times = MEASURE_HEADING
    if patched.count(old) != times:
        raise ValueError(f"expected {old!r} {times} times")
    return MEASURE_NOTE + patched.replace(old, new)


def _replace_once(source: str, fixes: tuple[tuple[str, str], ...]) -> str:
    for old, new in fixes:
        if source.count(old) != 1:
            raise ValueError(f"expected {old!r} once")
        source = source.replace(old, new)
    return source


def patch_search(source: str) -> str:
    """leaflet-search's code with its tips and alert set as text."""
    return SEARCH_NOTE + _replace_once(source, SEARCH_FIXES)


def main() -> int:
    """Patch the vendored files that are not patched yet."""
    for path, patch in ((SEARCH, patch_search), (MEASURE, patch_measure)):
        text = path.read_text(encoding="utf-8")
        if text.startswith(MARK):
            print(f"{path.name}: already patched")
            continue
        path.write_text(patch(text), encoding="utf-8")
        print(f"{path.name}: patched")
    return 0


if __name__ == "__main__":
    sys.exit(main())
