"""Sphinx extension: pages that load without errors and without the network.

- sphinx-thebe (live code through a Binder server, so online only) is loaded by Jupyter Book 1.x
  whether used or not, and its configuration script is added twice, which is a JavaScript error
  ("THEBE_JS_URL has already been declared") on every page. This course offers Colab and Binder
  launch buttons instead, so the thebe scripts are dropped.
- The theme's light/dark switch logs an error when no default mode is set; it is set to "auto".
"""


def _is_thebe(script) -> bool:
    body = getattr(script, "attributes", {}).get("body", "") or ""
    return "THEBE_JS_URL" in body or str(script).endswith(("sphinx-thebe.js", "thebe/lib/index.js"))


def _page_context(app, pagename, templatename, context, doctree):
    context.setdefault("default_mode", "auto")
    if "script_files" in context:
        context["script_files"] = [s for s in context["script_files"] if not _is_thebe(s)]


def setup(app):
    app.connect("html-page-context", _page_context, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
