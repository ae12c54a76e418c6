# Sourced by the bench scripts: sets `python` to a python3 that can import torch: $PYTHON if
# set, else python3, else the system's /usr/bin/python3 (Debian's python3-torch runs on the
# same LibTorch and BLAS as the runtime; a python3 earlier on PATH, pyenv or a venv, may lack
# it). Exits naming the fix when there is none.
python=${PYTHON:-python3}
if ! "$python" -c "import torch" 2>/dev/null; then
  if [[ -z ${PYTHON:-} ]] && /usr/bin/python3 -c "import torch" 2>/dev/null; then
    python=/usr/bin/python3
  else
    echo "$(basename "$0"): '$python' cannot import torch. Install Debian's PyTorch (the LibTorch" >&2
    echo "  the runtime links): apt-get install python3-torch  (or set PYTHON=...)" >&2
    exit 1
  fi
fi
