"""The self-contained HTML report of a run or a comparison.

The report is drawn by the dashboard's own chart code: ``frontend/js/report.js`` and the ES
modules it imports (``plots.js``, the one chart builder; ``colours.js``, the one colour table)
are inlined into the page with plotly.js (from the installed plotly package), the stylesheet
and the run data, so the report draws what the pages draw and opens offline.

The modules are inlined as ``data:`` URLs: each relative import specifier is replaced by its
module's source, base64-encoded, depth first. Module semantics stay intact (one scope per
module, one instance per module, since equal URLs are one module), which concatenating the
files would not give; a JS bundler would do the same but would bring Node into the API image.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

from plotly.offline import get_plotlyjs

from contract import metric_catalogue

ENTRY = "js/report.js"
STYLESHEET = "css/app.css"
# `from "./x.js"`, `import "./x.js"` and `export ... from "../x.js"`: the relative specifiers.
_SPECIFIER = re.compile(r"""(\bfrom\s*|\bimport\s*)(["'])(\.\.?/[^"']+)\2""")
_DYNAMIC_IMPORT = re.compile(r"\bimport\s*\(")


class ReportAssetsMissing(RuntimeError):
    """The frontend folder lacks a file the report is built from."""


def module_url(path: Path, cache: dict[Path, str] | None = None) -> str:
    """``path`` as a ``data:`` URL whose relative imports are ``data:`` URLs too."""
    cache = {} if cache is None else cache
    path = path.resolve()
    if path in cache:
        return cache[path]
    if not path.is_file():
        raise ReportAssetsMissing(f"{path} is missing: the report is built from the frontend")
    source = path.read_text(encoding="utf-8")
    if _DYNAMIC_IMPORT.search(source):
        raise ReportAssetsMissing(f"{path} uses import(): the report inlines static imports only")

    def inline(match: re.Match[str]) -> str:
        keyword, quote, specifier = match.groups()
        return f"{keyword}{quote}{module_url(path.parent / specifier, cache)}{quote}"

    encoded = base64.b64encode(_SPECIFIER.sub(inline, source).encode("utf-8")).decode("ascii")
    cache[path] = f"data:text/javascript;base64,{encoded}"
    return cache[path]


def _json_script(value: Any) -> str:
    # "<" escaped so no "</script>" in the data can end the element (JSON reads \u003c as "<").
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


def render_report(
    frontend_dir: Path, title: str, runs: list[dict[str, Any]], catalogue: dict[str, Any]
) -> str:
    """The report page. ``runs``: ``[{"run", "records", "projections"}]`` as report.js reads
    them (the run's detail, its epoch records, its first and last epochs' projections);
    ``catalogue``: ``GET /api/methods``'s, for the runs' titles. The metric catalogue (``GET
    /api/metrics``), from which the charts are built, is embedded too."""
    metrics = metric_catalogue().model_dump(mode="json")
    data = {"title": title, "runs": runs, "catalogue": catalogue, "metrics": metrics}
    return render_module_page(frontend_dir, title, ENTRY, "renderReport", data)


def render_module_page(
    frontend_dir: Path, title: str, entry_path: str, function: str, data: dict[str, Any]
) -> str:
    """A self-contained page that calls ``function(data)`` of the module ``entry_path``
    (relative to the frontend folder), everything inlined: the run report and the sweep
    report are two of these."""
    stylesheet = frontend_dir / STYLESHEET
    if not stylesheet.is_file():
        raise ReportAssetsMissing(f"{stylesheet} is missing: the report is built from the frontend")
    entry = module_url(frontend_dir / entry_path)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>{stylesheet.read_text(encoding="utf-8")}</style>
<script>{get_plotlyjs()}</script>
<script type="application/json" id="report-data">{_json_script(data)}</script>
<script type="module">
import {{ {function} }} from "{entry}";
{function}(JSON.parse(document.getElementById("report-data").textContent));
</script></head>
<body><main><div id="report"><noscript>The report draws its charts with JavaScript.</noscript>
</div></main></body></html>"""
