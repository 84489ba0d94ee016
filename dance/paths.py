"""Where things live: the project root, the weights, runs and user-data folders (env overrides), the data set."""

from __future__ import annotations

import os
from pathlib import Path

from dance.errors import DataError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = PROJECT_ROOT / "weights"  # the shipped checkpoints
WEIGHTS_ENV = "DANCE_WEIGHTS_DIR"  # where the CLI and the app look for named checkpoints, when set
RUNS_ENV = "DANCE_RUNS_DIR"  # where CV runs and label corrections go, when set
USER_DATA_ENV = "DANCE_USER_DATA"  # where the data sets people bring (Your data page, `dance data`) live, when set
SUBMISSION_FILE = "submission.csv"  # what `dance submit` writes, in the current folder, unless told otherwise


def weights_root() -> Path:
    """The checkpoint folder: $DANCE_WEIGHTS_DIR when set, else the project's weights/."""
    override = os.environ.get(WEIGHTS_ENV)
    return Path(override) if override else WEIGHTS_DIR


def runs_root() -> Path:
    """The runs folder (CV runs under cv/, label corrections): $DANCE_RUNS_DIR when set, else the project's runs/."""
    override = os.environ.get(RUNS_ENV)
    return Path(override) if override else PROJECT_ROOT / "runs"


def user_data_root() -> Path:
    """The folder of user data sets, one sub-folder each: $DANCE_USER_DATA when set, else the project's data/."""
    override = os.environ.get(USER_DATA_ENV)
    return Path(override) if override else PROJECT_ROOT / "data"


def evaluation_stem() -> Path:
    """Where `dance evaluate` writes its .json and .csv unless told otherwise: runs_root()/evaluation."""
    return runs_root() / "evaluation"


def cv_root() -> Path:
    """Where cross-validation runs are written and listed: runs_root()/cv."""
    return runs_root() / "cv"


def candidate_dirs(explicit: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The places searched for a data set, in order, each with where it came from."""
    found: list[tuple[str, Path]] = []
    if explicit:
        found.append(("--data", Path(explicit)))
    if os.environ.get("DANCE_DATA"):
        found.append(("$DANCE_DATA", Path(os.environ["DANCE_DATA"])))
    for base in dict.fromkeys([Path.cwd(), PROJECT_ROOT]):
        found.append(("data/dance", base / "data" / "dance"))
        found.append(("../shared/data/dance", base.parent / "shared" / "data" / "dance"))
    return found


def allowed_data_dir(text: str | os.PathLike) -> Path:
    """A data folder typed into the app, if it is one of the known data roots or under the user-data folder.

    The app is a server: a free path would let anyone read (and have echoed) any `*/train.csv` on the machine.
    """
    path = Path(text).expanduser()
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:
        raise DataError(f"{text}: not a usable folder ({exc}).") from None
    known = [p.resolve() for _, p in candidate_dirs()]
    roots = [user_data_root().resolve(), (PROJECT_ROOT / "data").resolve()]
    if resolved in known or any(resolved == r or r in resolved.parents for r in roots):
        return resolved
    allowed = "; ".join(dict.fromkeys(str(p) for p in [*known, *roots]))
    raise DataError(f"{text}: the app only trains on the known data folders or a folder under the project's data/ "
                    f"(allowed: {allowed}); use the command line for other folders.")


def find_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Return the first data folder holding train.csv, or raise DataError naming every place tried."""
    tried = candidate_dirs(explicit)
    if explicit:
        tried = tried[:1]  # an explicit --data must exist; silently falling back would mislead
    for _, path in tried:
        if (path / "train.csv").is_file() or (path / "test.csv").is_file():
            return path.resolve()
    places = "; ".join(f"{how} = {path}" for how, path in tried)
    raise DataError(f"No data set found (a folder with train.csv). Looked in: {places}.")
