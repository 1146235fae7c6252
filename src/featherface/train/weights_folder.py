"""Trained network or checkpoint -> a Hub-ready weights folder: ``config.json`` + ``model.safetensors`` + ``README.md``.

The folder is what a Hugging Face model repo holds and what ``load_model(weights=FOLDER)`` and the
package's ``featherface/weights/<name>/`` copy contain. The model card states data, recipe,
measured metrics with their protocol, hardware, and the licence note for WIDER FACE.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from featherface import __version__
from featherface._models import count_parameters, thop_equivalent_parameters
from featherface._models.config import ModelConfig
from featherface._weights.files import save_weights_folder
from featherface.train.checkpoint import load_checkpoint_model

__all__ = ["WIDER_NOTE", "ModelCard", "export_model", "export_checkpoint"]

WIDER_NOTE = (
    "Trained on WIDER FACE train images. WIDER FACE is provided for non-commercial research purposes "
    "only; check whether your use of these weights is compatible with its terms."
)


@dataclass(frozen=True)
class ModelCard:
    """What the model card says. ``metrics`` must be measured numbers, with ``protocol`` naming how."""

    title: str
    summary: str
    training_data: str
    recipe: str
    hardware: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    protocol: str = ""
    teacher_metrics: Mapping[str, float] = field(default_factory=dict)
    notes: str = ""
    license: str = "mit"
    commands: tuple[str, ...] = ()
    provenance: tuple[Mapping[str, str], ...] = ()
    """Where each part of the network started: rows ``{"part", "source", "licence", "sha256"}``
    (e.g. the backbone from the converted reference V1 file, the neck and heads from a fresh init)."""
    dev_protocol: str = ""
    dev_results: tuple[Mapping[str, Any], ...] = ()
    """The candidates the shipped weights were chosen from, scored on the dev split (never WIDER FACE
    val): rows ``{"candidate", "crops", "large", "medium", "all", "shipped"}`` (AP in percent)."""

    def render(self, config: ModelConfig, num_params: int, thop_params: int, sha256: str) -> str:
        lines = [
            "---",
            f"license: {self.license}",
            "library_name: featherface",
            "pipeline_tag: object-detection",
            "tags: [face-detection, featherface, retinaface, landmarks]",
            "---",
            "",
            f"# {self.title}",
            "",
            self.summary,
            "",
            "```python",
            "import featherface",
            f'det = featherface.load_model("{config.name}")',
            'faces = det.detect("photo.jpg")',
            "```",
            "",
            "## Model",
            "",
            f"- architecture: `{config.arch}`, width {config.width}, {config.bifpn_layers} BiFPN layers",
            f"- parameters: {num_params:,} ({thop_params:,} as `thop` counts them)",
            f"- input: BGR, mean {tuple(config.mean_bgr)} subtracted, any size; outputs boxes, scores, 5 landmarks",
            f"- `model.safetensors` sha256: `{sha256}`",
            f"- written by featherface {__version__}",
            "",
            "## Training",
            "",
        ]
        if self.provenance:
            lines += ["Initial weights (where each part started):", "", "| part | started from | licence | sha256 |",
                      "|---|---|---|---|"]
            lines += [f"| {r['part']} | {r['source']} | {r.get('licence', '-')} | {r.get('sha256', '-')} |"
                      for r in self.provenance]
            lines.append("")
        lines += [
            f"- data: {self.training_data}",
            f"- recipe: {self.recipe}",
            f"- hardware: {self.hardware}",
            "",
            "## Evaluation",
            "",
        ]
        if self.metrics:
            lines += [f"Protocol: {self.protocol}", "", "| | Easy | Medium | Hard |", "|---|---|---|---|"]
            lines.append("| this model | " + " | ".join(f"{100 * self.metrics[k]:.2f}" for k in ("easy", "medium", "hard")) + " |")
            if self.teacher_metrics:
                lines.append("| v1 reference teacher, same protocol | "
                             + " | ".join(f"{100 * self.teacher_metrics[k]:.2f}" for k in ("easy", "medium", "hard")) + " |")
            lines.append("")
        else:
            lines += ["Not evaluated.", ""]
        if self.dev_results:
            lines += ["Candidates, scored on the dev split (the choice was made here, not on val): "
                      f"{self.dev_protocol}", "",
                      "| candidate | training crops | faces >= 50 px | >= 20 px | all | shipped |",
                      "|---|---:|---:|---:|---:|---|"]
            lines += [f"| {r['candidate']} | {r['crops']:,} | {r['large']:.2f} | {r['medium']:.2f} | {r['all']:.2f} | "
                      f"{'yes' if r.get('shipped') else ''} |" for r in self.dev_results]
            lines.append("")
        if self.commands:
            lines += ["Reproduce:", "", "```bash", *self.commands, "```", ""]
        if self.notes:
            lines += ["## Notes", "", self.notes, ""]
        lines += ["## Licence", "", f"Weights: {self.license.upper()}. {WIDER_NOTE}", ""]
        return "\n".join(lines)


def export_model(
    model: nn.Module, config: ModelConfig, out_dir: str | os.PathLike, card: ModelCard | None = None
) -> str:
    """Write the folder for ``model``; returns the sha256 of ``model.safetensors``."""
    model = model.eval()
    sha = save_weights_folder(model, config, out_dir)
    if card is not None:
        text = card.render(config, count_parameters(model), thop_equivalent_parameters(model), sha)
        (Path(out_dir) / "README.md").write_text(text, encoding="utf-8")
    return sha


def export_checkpoint(
    checkpoint: str | os.PathLike, out_dir: str | os.PathLike, card: ModelCard | None = None, *, use_ema: bool = True
) -> str:
    """Checkpoint -> Hub-ready folder; returns the weights' sha256 (EMA weights when present and
    ``use_ema``; the checkpoint is read by :func:`featherface.train.checkpoint.load_checkpoint_model`)."""
    model, config, _ = load_checkpoint_model(checkpoint, use_ema=use_ema)
    return export_model(model, config, out_dir, card)
