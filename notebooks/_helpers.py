"""Shared plumbing of the planner notebooks: the binaries, running a step, the plot style.

`CELLPLACER` (environment) names the `cellplacer` binary, default the one on PATH;
`CELLPLACER_COMPARE` the benches' `compare` binary, default the one beside `cellplacer`
(both are in `$CARGO_TARGET_DIR/release` after `scripts/notebooks`), else
`cargo run --release -p benches --bin compare` in this repository.
"""

import os
import shutil
import subprocess

import matplotlib.pyplot as plt

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args, cwd=None):
    """Runs one step (check=True, output captured) and returns its stdout; when it fails,
    the error names the command and shows what it printed on stderr."""
    args = [str(a) for a in args]
    try:
        done = subprocess.run(args, check=True, capture_output=True, text=True, cwd=cwd)
    except subprocess.CalledProcessError as e:
        raise RuntimeError(
            f"{' '.join(args)} exited with {e.returncode}:\n{e.stderr.strip()}"
        ) from None
    except FileNotFoundError:
        raise RuntimeError(
            f"{args[0]} not found: build it (scripts/notebooks does) or set CELLPLACER"
        ) from None
    return done.stdout


def compare_command(cellplacer):
    """The command that runs the benches' `compare` (baselines side by side)."""
    explicit = os.environ.get("CELLPLACER_COMPARE")
    if explicit:
        return [explicit]
    found = shutil.which(cellplacer)
    if found:
        beside = os.path.join(os.path.dirname(os.path.realpath(found)), "compare")
        if os.access(beside, os.X_OK):
            return [beside]
    return ["cargo", "run", "-q", "--release", "--manifest-path",
            os.path.join(REPO, "Cargo.toml"), "-p", "benches", "--bin", "compare", "--"]


def plot_style():
    """Small figures (about 430 x 250 pixels) so that the committed notebooks stay small."""
    plt.rcParams.update({
        "figure.figsize": (6, 3.5),
        "figure.dpi": 72,
        "savefig.dpi": 72,
        "font.size": 9,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })
