#!/usr/bin/env bash
# make bench: run the benchmarks named in BENCH (default: the module benchmarks, which start
# their own servers). bluegreen_switch needs the bluegreen molecule instance: it converges it
# first and destroys it afterwards. See bench/README.md for each script's options.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
benches=${BENCH:-pgvector_index pgvector_recall milvus_index}
rc=0
for b in $benches; do
  echo "=== bench $b"
  case "$b" in
    pgvector_index|pgvector_recall|milvus_index)
      python "bench/$b.py" ${BENCH_ARGS:-} || rc=1 ;;
    logpipeline_ingest)
      lab/bin/lab.sh prepare rsyslog-shipper
      python bench/logpipeline_ingest.py || rc=1 ;;
    bluegreen_switch)
      tools/molecule.sh --prepare-only bluegreen
      molecule converge -s bluegreen
      python bench/bluegreen_switch.py ${BENCH_ARGS:-} || rc=1
      molecule destroy -s bluegreen
      docker volume rm -f aistack-mol-bluegreen-docker >/dev/null 2>&1 || true ;;
    *) echo "unknown benchmark '$b' (pgvector_index, pgvector_recall, milvus_index, logpipeline_ingest, bluegreen_switch)" >&2; exit 2 ;;
  esac
done
exit "$rc"
