# Sourced by the GPU sweeps: background `python -m dance` jobs that all end by $DEADLINE (seconds after start).
# Needs PY, EXTRA (options appended to every job), LOG (a folder) and DEADLINE.

left() { echo $((DEADLINE - SECONDS)); }
job() {  # job NAME ARGS...: one dance command in the background, logged, stopped at the deadline
  local name=$1; shift
  if [ "$(left)" -lt 30 ]; then echo "[$name] skipped: too close to the deadline"; return; fi
  ( start=$SECONDS
    timeout "$(left)" "$PY" -m dance "$@" $EXTRA >"$LOG/$name.log" 2>&1
    echo "[$name] exit $? after $((SECONDS - start)) s: python -m dance $* $EXTRA" | tee -a "$LOG/$name.log" ) &
}
