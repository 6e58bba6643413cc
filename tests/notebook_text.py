"""What an executed notebook shows, for the notebook tests: its outputs and their text."""

from __future__ import annotations


def outputs(nb):
    """Every output of the code cells of ``nb`` (an nbformat notebook), in order."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            yield from cell.get("outputs", [])


def text(nb) -> str:
    """Everything a reader sees as text: streams, text/plain and text/html data, errors."""
    parts = []
    for out in outputs(nb):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
        else:
            data = out.get("data", {})
            parts += [data.get("text/plain", ""), data.get("text/html", "")]
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)
