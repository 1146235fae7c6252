"""``featherface models`` (the registered models, their weights and metrics) and ``featherface download``."""

from __future__ import annotations

import argparse
import json
import textwrap
from typing import Any

from featherface.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CLIError, print_error

__all__ = ["register", "model_table", "format_metrics"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("models", help="list the registered models, their parameter counts and weights")
    p.add_argument("--json", action="store_true", help="print a JSON list of records instead of a table")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("download", help="fetch published weights into the Hugging Face cache (for offline use)",
                       description="Fetch the pinned, hashed weights of models into the Hugging Face Hub cache so "
                                   "that later runs work offline (HF_HUB_OFFLINE=1).")
    p.add_argument("names", nargs="*", metavar="NAME", help="models to fetch (see 'featherface models')")
    p.add_argument("--all", action="store_true",
                   help="every registered model: fetch published weights, report packaged and installed ones, "
                        "list models without published weights as skipped (with how to get them)")
    p.add_argument("--cache-dir", metavar="DIR", default=None,
                   help="Hugging Face cache folder (default: HF_HUB_CACHE, i.e. $HF_HOME/hub)")
    p.set_defaults(func=_cmd_download)


# -- models ---------------------------------------------------------------------------------------


def model_table(*, local: bool = False) -> list[dict[str, Any]]:
    """One record per registered model: parameters, weights status, metrics and licence.

    Parameter counts are computed from a freshly built network; metrics come from the registry's
    :class:`featherface._weights.registry.WeightsSpec` (measured numbers only, with their protocol).

    Args:
        local: also report this machine's state: a model without published weights whose weights
            are installed in the local store (``featherface convert-reference``) gets ``weights``
            ``"installed"`` and the recorded licence. Off by default so that the table (and
            ``docs/models.md``, generated from it) is the same everywhere.
    """
    from featherface._models import count_parameters, thop_equivalent_parameters
    from featherface._weights.registry import build_model, get_spec, list_models
    from featherface._weights.store import is_installed, read_install_record

    rows = []
    for name in list_models():
        spec = get_spec(name)
        net = build_model(name)
        w = spec.weights
        installed = local and w is None and is_installed(name)
        try:
            installed_license = read_install_record(name).get("license") if installed else None
        except (OSError, ValueError):
            installed_license = None
        ref = spec.reference
        measured = w if w is not None else ref  # published weights, else the third-party file users install
        rows.append({
            "name": name,
            "arch": spec.config.arch,
            "description": spec.description,
            "params": count_parameters(net),
            "thop_params": thop_equivalent_parameters(net),
            "weights": ("installed" if installed else "none") if w is None
            else ("packaged" if w.revision is None else "hub"),
            "repo_id": None if w is None else w.repo_id,
            "revision": None if w is None else w.revision,
            "sha256": None if w is None else w.sha256,
            "metrics": {} if measured is None else dict(measured.metrics),
            "metrics_protocol": None if measured is None else (measured.metrics_protocol or None),
            "license": w.license if w is not None else installed_license or (ref.license if ref else None),
            "source": None if ref is None else {
                "repository": ref.repository, "commit": ref.commit, "path": ref.path, "url": ref.url,
                "sha256": ref.sha256,
            },
        })
    return rows


_AP_KEYS = ("easy", "medium", "hard")
"""Metric names that are WIDER FACE AP fractions, shown as percentages."""


def _metric_value(name: str, value: float) -> str:
    return f"{100 * value:.2f}%" if name in _AP_KEYS else f"{value:g}"


def format_metrics(metrics: dict[str, float], protocol: str | None) -> str:
    """``"name value, ... (protocol)"`` or ``"-"``; WIDER FACE AP (``easy``/``medium``/``hard``) in percent."""
    if not metrics:
        return "-"
    text = ", ".join(f"{k} {_metric_value(k, v)}" for k, v in metrics.items())
    return f"{text} ({protocol})" if protocol else text


def _metrics_cell(metrics: dict[str, float]) -> str:
    """The compact metrics column: WIDER FACE AP as ``easy / medium / hard`` in percent."""
    if not metrics:
        return "-"
    if set(metrics) == set(_AP_KEYS):
        return " / ".join(f"{100 * metrics[k]:.2f}" for k in _AP_KEYS)
    return ", ".join(f"{k} {v:g}" for k, v in metrics.items())


TABLE_WIDTH = 100
"""``featherface models`` fits this many columns."""


def _details(row: dict[str, Any]) -> list[str]:
    """The lines under the table for one model, wrapped to :data:`TABLE_WIDTH`."""
    from featherface._weights.registry import install_hint

    fields = [("", row["description"])]
    if row["weights"] == "none" and install_hint(row["name"]) is not None:
        fields.append(("weights", "not shipped; install them once with 'featherface convert-reference FILE' "
                                  "(FILE: the source below)"))
    else:
        fields.append(("weights", row["weights"] + (f" ({row['repo_id']}@{row['revision']})" if row["revision"] else "")))
    if row["source"]:
        src = row["source"]
        fields.append(("source", f"{src['path']} of {src['repository']} at commit {src['commit'][:7]}, "
                               f"sha256 {src['sha256']} (download address: docs/models.md)"))
    fields.append(("metrics", format_metrics(row["metrics"], row["metrics_protocol"])))
    fields.append(("licence", row["license"] or "-"))
    lines = []
    for label, text in fields:
        first = f"{row['name']}: " if not label else f"  {label}: "
        lines.append(textwrap.fill(text, TABLE_WIDTH, initial_indent=first, subsequent_indent="      ",
                                   break_long_words=False, break_on_hyphens=False))
    return lines


def _cmd_models(args: argparse.Namespace) -> int:
    rows = model_table(local=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    header = ("name", "params", "thop params", "weights", "WIDER FACE val AP % (easy / medium / hard)")
    table = [header] + [
        (r["name"], f"{r['params']:,}", f"{r['thop_params']:,}", r["weights"], _metrics_cell(r["metrics"]))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for r in rows:
        print()
        print("\n".join(_details(r)))
    return EXIT_OK


# -- download -------------------------------------------------------------------------------------


def _cmd_download(args: argparse.Namespace) -> int:
    from featherface._weights.hub import download_weights, hub_errors
    from featherface._weights.registry import get_spec, install_hint, list_models
    from featherface._weights.store import installed_weights_dir, is_installed
    from featherface.errors import WeightsError

    if args.all and args.names:
        raise CLIError("give model names or --all, not both", EXIT_USAGE)
    if not args.all and not args.names:
        raise CLIError(f"name the models to download or pass --all (known models: {', '.join(list_models())})",
                       EXIT_USAGE)
    for name in args.names:  # every name is known before anything is fetched (UnknownModelError: exit 2)
        get_spec(name)
    names = list_models() if args.all else list(dict.fromkeys(args.names))
    download_errors: tuple[type[BaseException], ...] = (WeightsError, *hub_errors())
    failures = 0
    fetched = 0
    for name in names:
        published = get_spec(name).weights
        if published is not None and published.revision is None:  # ships inside the wheel, not on the Hub
            print(f"{name}: packaged with featherface, nothing to download (it loads offline)")
            continue
        if published is None and is_installed(name):
            print(f"{name}: installed in {installed_weights_dir(name)}, nothing to download (it loads offline)")
            continue
        if published is None and args.all:  # --all fetches what can be fetched; the others are reported
            hint = install_hint(name)
            print(f"{name}: skipped, no published weights" + (f"; {hint}" if hint else ""))
            continue
        if published is None:
            failures += 1
            how = "install the authors' release with 'featherface convert-reference PATH', or " if install_hint(name) else ""
            print_error(f"{name}: no published weights yet, nothing to download ({how}use your own with --weights PATH)")
            continue
        try:
            resolved = download_weights([name], cache_dir=args.cache_dir)[name]
        except download_errors as exc:
            failures += 1
            print_error(f"{name}: download failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            continue
        print(f"{name}: {resolved.model_file} (sha256 {resolved.sha256})")
        fetched += 1
    if fetched:
        from huggingface_hub import constants

        print(f"cache: {args.cache_dir or constants.HF_HUB_CACHE}")
    return EXIT_FAILURE if failures else EXIT_OK
