#!/usr/bin/env bash
# Build an isolated virtual environment for one peer detector of benchmarks/peers.py.
#
#   benchmarks/peers/make_env.sh NAME        NAME: haar | mtcnn | mediapipe
#
# Creates (or re-creates, --clear) .venv-peers-NAME/ at the repository root with ${PYTHON:-python3}
# (CPython 3.10-3.12: mediapipe 0.10.21 has no wheel for 3.13), then in ONE pip call installs
# featherface from this checkout (editable, with the onnx extra) together with NAME.txt, so that the
# resolver sees the peer's pins and featherface's requirements at the same time; then, if there is
# a NAME.nodeps.txt, installs what it lists with --no-deps (see mtcnn.txt for why).  Finally it runs
# `pip check` (informational) and `peers.py --list` to show which detectors load.
#
# Run the benchmark in the environment afterwards, e.g.
#   .venv-peers-NAME/bin/python benchmarks/peers.py --runs 30
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
name=${1:-}
if [[ -z $name || $name == -h || $name == --help || ! -f $here/$name.txt ]]; then
    echo "usage: $0 NAME   (NAME one of: $(cd "$here" && ls ./*.txt | grep -v nodeps | sed 's|./||; s|\.txt$||' | tr '\n' ' '))" >&2
    exit 2
fi
py=${PYTHON:-python3}
env=$root/.venv-peers-$name
start=$SECONDS

echo "+ $py -m venv --clear $env"
"$py" -m venv --clear "$env"
pip=("$env/bin/python" -m pip)
echo "+ pip install -e $root[onnx] -r $here/$name.txt"
"${pip[@]}" install -e "$root[onnx]" -r "$here/$name.txt"
if [[ -f $here/$name.nodeps.txt ]]; then
    echo "+ pip install --no-deps -r $here/$name.nodeps.txt"
    "${pip[@]}" install --no-deps -r "$here/$name.nodeps.txt"
fi
echo "+ pip check (informational)"
"${pip[@]}" check || true
echo "+ peers.py --list"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$env/bin/python" "$root/benchmarks/peers.py" --list
echo "built $env in $((SECONDS - start)) s; size $(du -sh "$env" | cut -f1)"
