"""Run a module or the app's pages as in the slim install (requirements-serve.txt); report imports of what it lacks.

Usage: python tests/torch_guard.py -m dance predict photo.jpg  |  python tests/torch_guard.py --app PHOTO
torch, torchvision and the other full-install packages are made absent (`sys.modules[name] = None`:
`importlib.util.find_spec` says not installed, `import` fails) and every `import` statement naming them is
recorded. Exit status: the command's, or 99 when something tried to import one (the attempts go to stderr).
"""

from __future__ import annotations

import builtins
import runpy
import sys
import traceback

BLOCKED = ("torch", "torchvision", "sklearn", "scipy", "safetensors", "onnx", "efficientnet_lite_pytorch")
attempts: list[str] = []
_real_import = builtins.__import__


def _guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    """builtins.__import__ that records and refuses torch / torchvision."""
    if level == 0 and name.split(".")[0] in BLOCKED:
        attempts.append(name + "\n" + "".join(traceback.format_stack(limit=8)))
        raise ModuleNotFoundError(f"No module named {name!r} (blocked by tests/torch_guard.py)", name=name)
    return _real_import(name, globals, locals, fromlist, level)


def app(photo: str) -> int:
    """Render Predict, upload `photo`, then open a torch page; print what was shown; 0 when nothing failed."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120)
    at.run()
    at.file_uploader[0].upload(Path(photo).name, Path(photo).read_bytes(), "image/jpeg")
    at.run()
    shown = [m.value for m in at.markdown if m.value.startswith("### ")]
    warnings = [w.value for w in at.warning] + [e.value for e in at.error]
    # without torch the Evaluate page is a function page (url "evaluate"); switch_page only finds file pages
    at._page_hash = next(h for h, info in at._registered_pages.items() if info.get("url_pathname") == "evaluate")
    at.run()
    if at.exception:
        print(at.exception, file=sys.stderr)
        return 1
    print("HEADINGS", shown)
    print("WARNINGS", warnings)
    print("EVALUATE", [i.value for i in at.info])
    return 0


def main() -> int:
    for name in [m for m in sys.modules if m.split(".")[0] in BLOCKED]:
        del sys.modules[name]
    for name in BLOCKED:
        sys.modules[name] = None  # "not installed"
    builtins.__import__ = _guarded_import
    code = 0
    try:
        if sys.argv[1] == "--app":
            code = app(sys.argv[2])
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
        print("import of a full-install package attempted:\n" + "\n".join(attempts), file=sys.stderr)
        return 99
    return code


if __name__ == "__main__":
    sys.exit(main())
