"""DINO's collapse signature (Caron et al. 2021, Sec. 5.3, Fig. 7) from real runs: a table of
the teacher entropy h(P_t), KL(P_t || P_s) and the verdict per run, and their curves as an SVG.

Reads the ``--jsonl`` files that ``collapse-lab train --preset dino... --jsonl FILE`` wrote
(named ``PRESET-DATASET-SEED.jsonl``), prints one markdown row per run (the signals at the
first and the last epoch, ln K, the spread std·√d of z and the backbone's kNN, the verdict)
and writes ``--svg``: h(P_t) / ln K and KL per epoch, one colour per preset, one line per
run. The paper's expectation: without centering h -> 0, without
sharpening h -> ln K, in both KL -> 0; a healthy run keeps h below ln K and KL above 0.

    python -m bench.dino_signals runs/*.jsonl --svg docs/dino-signals.svg
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.jsonl_runs import read_run

COLOURS = {
    "dino": "#1b9e77",
    "dino-no-centering": "#d95f02",
    "dino-no-sharpening": "#7570b3",
    "dino-no-momentum": "#e7298a",
}
WIDTH, HEIGHT, MARGIN = 360, 240, 44


def _polyline(points: list[tuple[float, float]], colour: str) -> str:
    coordinates = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return (
        f'<polyline points="{coordinates}" fill="none" stroke="{colour}" '
        f'stroke-width="1.6" stroke-opacity="0.85"/>'
    )


def _panel(
    runs: list[tuple[str, list[dict[str, Any]]]],
    value: str,
    title: str,
    top: float,
    left: float,
) -> list[str]:
    """One chart: ``value`` ("entropy" = h / ln K, or "kl") against the epoch."""

    def y_of(record: dict[str, Any]) -> float:
        logs = record["logs"]
        if value == "entropy":
            return float(logs["teacher_entropy"] / logs["log_k"])
        return float(logs["teacher_student_kl"])

    epochs = max(len(records) for _, records in runs) - 1
    y_max = 1.0 if value == "entropy" else max(y_of(r) for _, rs in runs for r in rs) * 1.05
    inner_w, inner_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    x0, y0 = left + MARGIN, top + MARGIN

    def point(epoch: float, y: float) -> tuple[float, float]:
        return x0 + inner_w * epoch / max(epochs, 1), y0 + inner_h * (1 - y / y_max)

    parts = [
        f'<text x="{left + WIDTH / 2}" y="{top + 22}" text-anchor="middle" '
        f'font-size="13">{title}</text>',
        f'<rect x="{x0}" y="{y0}" width="{inner_w}" height="{inner_h}" fill="none" stroke="#999"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        label = f"{fraction * y_max:.2f}"
        _, y = point(0, fraction * y_max)
        parts.append(
            f'<text x="{x0 - 4}" y="{y + 4}" text-anchor="end" font-size="10">{label}</text>'
        )
    for epoch in range(0, epochs + 1, max(1, epochs // 4)):
        x, _ = point(epoch, 0)
        parts.append(
            f'<text x="{x}" y="{y0 + inner_h + 14}" text-anchor="middle" '
            f'font-size="10">{epoch}</text>'
        )
    parts.append(
        f'<text x="{x0 + inner_w / 2}" y="{y0 + inner_h + 30}" text-anchor="middle" '
        'font-size="11">epoch</text>'
    )
    for preset, records in runs:
        points = [point(r["epoch"], y_of(r)) for r in records]
        parts.append(_polyline(points, COLOURS.get(preset, "#666")))
    return parts


def write_svg(runs: list[tuple[str, list[dict[str, Any]]]], path: Path, caption: str) -> None:
    legend_y = HEIGHT + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * WIDTH}" height="{HEIGHT + 60}" '
        'font-family="system-ui, sans-serif">',
        '<rect width="100%" height="100%" fill="white"/>',
        *_panel(runs, "entropy", "teacher entropy h(P_t) / ln K", 0, 0),
        *_panel(runs, "kl", "KL(P_t ‖ P_s)", 0, WIDTH),
    ]
    for i, (preset, colour) in enumerate(COLOURS.items()):
        x = 30 + i * 170
        parts.append(
            f'<line x1="{x}" y1="{legend_y}" x2="{x + 22}" y2="{legend_y}" stroke="{colour}" '
            'stroke-width="3"/>'
        )
        parts.append(f'<text x="{x + 28}" y="{legend_y + 4}" font-size="11">{preset}</text>')
    parts.append(
        f'<text x="{WIDTH}" y="{legend_y + 30}" text-anchor="middle" font-size="10" '
        f'fill="#555">{caption}</text>'
    )
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def _first_last(records: list[dict[str, Any]], space: str, metric: str) -> str:
    """``metric`` of the ``space`` embedding ("projector": z, "backbone": h) at the first and
    the last epoch, "first → last" ("-" where not recorded)."""
    values = [(r.get(space) or {}).get(metric) for r in (records[0], records[-1])]
    if None in values:
        return "-"
    return f"{values[0]:.2f} → {values[1]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--svg", type=Path, help="write the curves here")
    parser.add_argument("--caption", default="", help="a line under the figure")
    args = parser.parse_args()
    for path in args.files:  # how the README's loop names them: PRESET-DATASET-SEED
        if len(path.stem.rsplit("-", 2)) != 3:
            parser.error(f"{path}: name it PRESET-DATASET-SEED.jsonl (dino-digits-0.jsonl)")
    runs: list[tuple[str, list[dict[str, Any]]]] = []
    print(
        "| preset | dataset | seed | h(P_t) first → last | ln K | KL first → last "
        "| centre ‖c‖ | z spread first → last | kNN(h) first → last | verdict |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for path in sorted(args.files):
        preset, dataset, seed = path.stem.rsplit("-", 2)
        records, verdict = read_run(path)
        if len(records) < 2 or "teacher_entropy" not in records[-1]["logs"]:
            continue
        first, last = records[0]["logs"], records[-1]["logs"]
        onset = verdict.get("onset_epoch")
        kind = verdict.get("kind", "?") + (f" (from {onset})" if onset is not None else "")
        print(
            f"| {preset} | {dataset} | {seed} "
            f"| {first['teacher_entropy']:.2f} → {last['teacher_entropy']:.2f} "
            f"| {last['log_k']:.2f} "
            f"| {first['teacher_student_kl']:.3f} → {last['teacher_student_kl']:.3f} "
            f"| {last['center_norm']:.2f} "
            f"| {_first_last(records, 'projector', 'std_l2_sqrt_d')} "
            f"| {_first_last(records, 'backbone', 'knn_top1')} | {kind} |"
        )
        runs.append((preset, records))
    if args.svg and runs:
        write_svg(runs, args.svg, args.caption)
        print(f"wrote {args.svg}")


if __name__ == "__main__":
    main()
