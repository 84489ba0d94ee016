"""Run a module or the Predict page with torch and torchvision unimportable; report any attempt to import them.

Usage: python tests/torch_guard.py -m dance predict photo.jpg  |  python tests/torch_guard.py --predict-page
Exit status: the command's, or 99 when something tried to import torch (the attempts are printed on stderr).
"""

from __future__ import annotations

import runpy
import sys
import traceback

BLOCKED = ("torch", "torchvision")
attempts: list[str] = []


class BlockTorch:
    """A meta-path finder that refuses torch and torchvision and records who asked."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            attempts.append(name + "\n" + "".join(traceback.format_stack(limit=8)))
            raise ImportError(f"{name} is blocked by tests/torch_guard.py")
        return None


def predict_page() -> int:
    """Render the Predict page with streamlit's AppTest; 0 when it ran without an exception."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("app.py", default_timeout=120)
    at.run()
    at.switch_page("dance/ui/pages/predict.py").run()
    if at.exception:
        print(at.exception, file=sys.stderr)
        return 1
    print("\n".join(m.value for m in at.markdown))
    return 0


def main() -> int:
    sys.meta_path.insert(0, BlockTorch())
    for name in [m for m in sys.modules if m.split(".")[0] in BLOCKED]:
        del sys.modules[name]
    code = 0
    try:
        if sys.argv[1] == "--predict-page":
            code = predict_page()
        else:
            assert sys.argv[1] == "-m"
            sys.argv = sys.argv[2:]
            runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception:  # noqa: BLE001 - e.g. the ImportError raised above: reported below
        traceback.print_exc()
        code = 1
    if attempts:
        print("torch import attempted:\n" + "\n".join(attempts), file=sys.stderr)
        return 99
    return code


if __name__ == "__main__":
    sys.exit(main())
