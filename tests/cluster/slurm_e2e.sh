#!/usr/bin/env bash
# End-to-end test of profiles/slurm on a one-node SLURM cluster that this script
# sets up on 127.0.0.1. Meant for CI, as root, on a fresh Debian 12 machine:
#
#   bash tests/cluster/slurm_e2e.sh
#
# What it does:
#   0. installs Debian's slurmctld, slurmd, slurm-client and munge (apt) and the
#      Snakemake SLURM executor plugin (pip, next to the snakemake on PATH) if missing;
#      writes /etc/slurm/slurm.conf from tests/cluster/slurm.conf.in (an existing file
#      is put back at the end), starts munged, slurmctld and slurmd by hand and waits
#      until sinfo shows the node idle;
#   1. runs the pipeline with tests/cluster/e2e_small.yaml and --profile profiles/slurm
#      in a temporary copy of the working tree, checks that the jobs went through the
#      scheduler, runs the same settings locally (--profile profiles/local --cores 2) in
#      another copy and checks that both wrote the same results/accuracy.csv;
#   2. runs tests/cluster/e2e_diverge.yaml, whose training job diverges, and checks that
#      the job fails on SLURM and Snakemake says so and exits non-zero;
#   3. always cancels the jobs of its cluster and stops the daemons it started, by
#      their process ids, also on failure or when its time limit runs out.
#
# Your results/ and data/ are never touched: every run works in a copy under $TMPDIR.
# Settings (environment variables):
#   SLURM_E2E_TIME_LIMIT  seconds for the whole script (default 1800)
#   SLURM_E2E_RUN_LIMIT   seconds for each snakemake call (default 600)
#   SLURM_E2E_KEEP=1      keep the temporary copies and the SLURM logs
#   SNAKEMAKE             the snakemake to use (default: the one on PATH)
#   SLURM_E2E_CTLD_PORT / SLURM_E2E_SLURMD_PORT  ports (default 6817 / 6818)
# Exit status: 0 when every check passed, 1 otherwise, 124 when time ran out.

set -uo pipefail

# --- an overall time limit: run this script again under timeout -------------------
if [[ -z "${_SLURM_E2E_LIMITED:-}" ]]; then
    export _SLURM_E2E_LIMITED=1
    # the script stops its daemons itself when timeout's TERM arrives; the KILL after
    # that grace period is only for a cleanup that hangs
    exec timeout --kill-after=150 "${SLURM_E2E_TIME_LIMIT:-1800}" bash "${BASH_SOURCE[0]}" "$@"
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=${SLURM_E2E_REPO:-$(cd "$HERE/../.." && pwd)}
RUN_LIMIT=${SLURM_E2E_RUN_LIMIT:-600}
CTLD_PORT=${SLURM_E2E_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_E2E_SLURMD_PORT:-6818}
PLUGIN_SPEC='snakemake-executor-plugin-slurm>=2.8,<3'
SLURM_CONF_PATH=/etc/slurm/slurm.conf
# options that only this test cluster needs, on top of profiles/slurm: no accounting
# database, so no sacct (job states come from squeue) and no account to charge
CLUSTER_OPTS=(
    --slurm-status-command squeue
    --slurm-no-account
    --slurm-init-seconds-before-status-checks 5
    --slurm-keep-successful-logs
)

PASSED=0
FAILED=0
WORK=""
CHILD=""
MUNGED_PID=""
CTLD_PID=""
SLURMD_PID=""
CONF_BACKUP=""
CONF_WRITTEN=""

say() { printf '[slurm-e2e %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
# a setup step that cannot go on: report, and end (the EXIT trap cleans up)
die() { fail "$*"; exit 1; }

alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

# stop one process that this script started, by its id: the signal $3 (TERM unless
# given), up to 30 s, then KILL
stop_pid() {
    local name=$1 pid=$2 signal=${3:-TERM}
    alive "$pid" || return 0
    kill -"$signal" "$pid" 2>/dev/null
    for _ in $(seq 1 60); do
        alive "$pid" || { wait "$pid" 2>/dev/null; say "stopped $name (pid $pid)"; return 0; }
        sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    say "killed $name (pid $pid): it did not end within 30 s of $signal"
}

show_logs() {
    local f
    for f in "$WORK"/slurm/slurmctld.{log,out} "$WORK"/slurm/slurmd.{log,out}; do
        [[ -s "$f" ]] || continue
        echo "----- last lines of $f"
        tail -n 25 "$f"
    done
}

cleanup() {
    local status=$?
    trap - EXIT TERM INT HUP
    # a trap can fire inside a command whose output goes to a file: back to the
    # script's own stdout and stderr
    exec 1>&3 2>&4
    if alive "$CHILD"; then
        # INT, as for Ctrl-C: snakemake then cancels its SLURM jobs and ends (on TERM
        # it would wait for the running jobs to finish)
        say "stopping the running command (pid $CHILD)"
        stop_pid "command" "$CHILD" INT
    fi
    if alive "$CTLD_PID"; then
        # end whatever is left of this cluster's jobs before the daemons go
        local left
        left=$(timeout 20 squeue -h -t PENDING,RUNNING,CONFIGURING,COMPLETING -o %i 2>/dev/null | tr '\n' ' ')
        if [[ -n "${left// /}" ]]; then
            say "cancelling SLURM jobs still queued or running: $left"
            # shellcheck disable=SC2086
            timeout 20 scancel $left 2>/dev/null
            sleep 3
        fi
    fi
    stop_pid slurmd "$SLURMD_PID"
    stop_pid slurmctld "$CTLD_PID"
    stop_pid munged "$MUNGED_PID"
    if [[ -n "$CONF_BACKUP" ]]; then
        mv -f "$CONF_BACKUP" "$SLURM_CONF_PATH" && say "restored the previous $SLURM_CONF_PATH"
    elif [[ -n "$CONF_WRITTEN" ]]; then
        rm -f "$SLURM_CONF_PATH"
    fi
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if (( status != 0 || FAILED > 0 )); then show_logs; fi
        if [[ "${SLURM_E2E_KEEP:-}" == 1 ]]; then
            say "kept $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    echo "slurm-e2e: $PASSED passed, $FAILED failed"
    if (( status == 0 && FAILED > 0 )); then status=1; fi
    exit "$status"
}
exec 3>&1 4>&2
trap cleanup EXIT
trap 'echo "FAIL: time limit of the whole test (${SLURM_E2E_TIME_LIMIT:-1800} s) reached" >&3; FAILED=$((FAILED + 1)); exit 124' TERM
trap 'echo "FAIL: interrupted" >&3; FAILED=$((FAILED + 1)); exit 130' INT HUP

# Run a command with a time limit, in the background so that the traps above can
# run while it does (bash runs a trap only between commands, and `wait` is one).
# On timeout the command gets INT (snakemake then cancels its SLURM jobs), KILL
# 60 s later; returns the command's status (124 on timeout).
limited() {
    local seconds=$1 status
    shift
    timeout --signal=INT --kill-after=60 "$seconds" "$@" &
    CHILD=$!
    wait "$CHILD"
    status=$?
    CHILD=""
    return "$status"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

[[ $(id -u) == 0 ]] || die "run this as root: it installs packages and starts SLURM daemons"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/slurm-e2e.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/slurm/state" "$WORK/slurm/spool"
say "scratch folder: $WORK"

# --- 0a. Debian packages -----------------------------------------------------------
missing=()
for pkg in slurmctld slurmd slurm-client munge; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
    say "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! { limited 600 apt-get update -qq \
        && limited 900 apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$WORK/apt.log" 2>&1; then
        tail -n 20 "$WORK/apt.log"
        die "apt-get could not install ${missing[*]}"
    fi
fi
for tool in munged slurmctld slurmd sbatch squeue scancel sinfo; do
    command -v "$tool" >/dev/null || die "$tool not found after installing the packages"
done
pass "SLURM $(dpkg-query -W -f='${Version}' slurmctld) and munge $(dpkg-query -W -f='${Version}' munge) are installed"

# --- 0b. snakemake and the executor plugin -----------------------------------------
SNAKEMAKE=${SNAKEMAKE:-$(command -v snakemake || true)}
[[ -n "$SNAKEMAKE" && -x "$SNAKEMAKE" ]] || die "no snakemake on PATH (set SNAKEMAKE=/path/to/snakemake)"
PYTHON=""
shebang=$(head -n 1 "$SNAKEMAKE" | sed -n 's/^#! *//p')
for candidate in "$(dirname "$SNAKEMAKE")/python" "$shebang" python3; do
    # shellcheck disable=SC2086
    if [[ -n "$candidate" ]] && $candidate -c 'import snakemake' 2>/dev/null; then
        PYTHON=$candidate
        break
    fi
done
[[ -n "$PYTHON" ]] || die "cannot find the python that runs $SNAKEMAKE"
# shellcheck disable=SC2086
if ! $PYTHON -c 'import snakemake_executor_plugin_slurm' 2>/dev/null; then
    say "installing $PLUGIN_SPEC with $PYTHON -m pip"
    # shellcheck disable=SC2086
    limited 600 $PYTHON -m pip install --quiet "$PLUGIN_SPEC" >"$WORK/pip.log" 2>&1 \
        || { tail -n 20 "$WORK/pip.log"; die "pip could not install $PLUGIN_SPEC"; }
fi
# shellcheck disable=SC2086
plugin_version=$($PYTHON -c 'from importlib.metadata import version; print(version("snakemake-executor-plugin-slurm"))' 2>/dev/null)
[[ -n "$plugin_version" ]] || die "the SLURM executor plugin is not importable by $PYTHON"
pass "snakemake $("$SNAKEMAKE" --version) with snakemake-executor-plugin-slurm $plugin_version"
# the jobs start snakemake from PATH on the node (same machine here)
PATH="$(dirname "$SNAKEMAKE"):$PATH"
export PATH

# --- 0c. munge, slurm.conf, daemons ------------------------------------------------
for daemon in slurmctld slurmd; do
    if pgrep -x "$daemon" >/dev/null; then
        die "a $daemon is already running on this machine; this test needs its own cluster"
    fi
done

if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating /etc/munge/munge.key"
    install -d -o munge -g munge -m 700 /etc/munge
    (umask 077; head -c 1024 /dev/urandom >/etc/munge/munge.key)
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 755 /run/munge
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "a munged is already running; using it (and leaving it running)"
else
    # setsid: the daemons are not in this script's process group, so the TERM of the
    # time limit reaches this script only, which then stops them in order
    setsid setpriv --reuid=munge --regid=munge --init-groups \
        /usr/sbin/munged --foreground --log-file="$WORK/slurm/munged.log" \
        >"$WORK/slurm/munged.out" 2>&1 </dev/null &
    MUNGED_PID=$!
    for _ in $(seq 1 20); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.5
    done
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || { cat "$WORK/slurm/munged.out"; die "munged did not start"; }
fi

HOST=$(hostname -s)
NODE_HW=$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]* //')
[[ "$NODE_HW" == *CPUs=* && "$NODE_HW" == *RealMemory=* ]] || die "slurmd -C did not describe this machine: $NODE_HW"
if [[ -e "$SLURM_CONF_PATH" ]]; then
    CONF_BACKUP="$WORK/slurm.conf.before"
    cp -p "$SLURM_CONF_PATH" "$CONF_BACKUP"
fi
mkdir -p "$(dirname "$SLURM_CONF_PATH")"
sed -e "s|@HOST@|$HOST|g" -e "s|@DIR@|$WORK/slurm|g" -e "s|@NODE_HW@|$NODE_HW|" \
    -e "s|@CTLD_PORT@|$CTLD_PORT|" -e "s|@SLURMD_PORT@|$SLURMD_PORT|" \
    "$HERE/slurm.conf.in" >"$WORK/slurm/slurm.conf"
cp "$WORK/slurm/slurm.conf" "$SLURM_CONF_PATH"
CONF_WRITTEN=1
unset SLURM_CONF
say "node: $HOST (127.0.0.1) $NODE_HW"

setsid /usr/sbin/slurmctld -D -i >"$WORK/slurm/slurmctld.out" 2>&1 </dev/null &
CTLD_PID=$!
setsid /usr/sbin/slurmd -D >"$WORK/slurm/slurmd.out" 2>&1 </dev/null &
SLURMD_PID=$!
state=""
for _ in $(seq 1 60); do
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n 1)
    [[ "$state" == idle ]] && break
    alive "$CTLD_PID" || break
    alive "$SLURMD_PID" || break
    sleep 1
done
[[ "$state" == idle ]] || die "the node did not become idle (sinfo says '${state:-nothing}')"
pass "slurmctld (pid $CTLD_PID) and slurmd (pid $SLURMD_PID) are up; sinfo shows $HOST idle"

# --- helpers for the runs ------------------------------------------------------------
# a copy of the working tree (tracked and untracked files that git does not ignore,
# so no results/, data/ or .snakemake/) in a new folder; prints its path. Python
# virtual environments inside the repository (e.g. .ci/run's .venv-ci) are left out.
copy_repo() {
    local dest skip
    dest=$(mktemp -d "$WORK/$1.XXXX")
    # shellcheck disable=SC2016
    skip=$(cd "$REPO" && find . -maxdepth 3 -name pyvenv.cfg -printf '%h\n' \
        | sed -e 's|^\./||' -e 's/[][\.*^$()+?{}|]/\\&/g' | paste -sd '|')
    # shellcheck disable=SC2016
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
        | { if [[ -n "$skip" ]]; then grep -z -v -E "^($skip)/"; else cat; fi; } \
        | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh \
        | tar --null -T - -cf -) | tar -C "$dest" -xf -
    echo "$dest"
}

# run snakemake in a copy; $1 = copy, $2 = name of the output file, rest = arguments
run_snakemake() {
    local dir=$1 out=$2 status
    shift 2
    # env -C instead of a subshell: the traps must see the command's pid (CHILD)
    limited "$RUN_LIMIT" env -C "$dir" "$SNAKEMAKE" "$@" >"$dir/$out" 2>&1
    status=$?
    if (( status == 124 || status == 137 )); then
        fail "snakemake $* did not finish within $RUN_LIMIT s"
    fi
    return "$status"
}

# the SLURM job ids that Snakemake's log says it submitted
submitted_ids() {
    sed -n 's/.*submitted with SLURM jobid \([0-9][0-9]*\).*/\1/p' "$1" | sort -n -u
}

# --- 1. the small pipeline on SLURM and locally --------------------------------------
say "run 1: pipeline with tests/cluster/e2e_small.yaml on SLURM"
SLURM_COPY=$(copy_repo slurm-run)
start=$(now)
run_snakemake "$SLURM_COPY" snakemake.out \
    --profile profiles/slurm --configfile config.yaml tests/cluster/e2e_small.yaml \
    "${CLUSTER_OPTS[@]}"
slurm_status=$?
slurm_seconds=$(elapsed "$start" "$(now)")
if (( slurm_status == 0 )) && [[ -s "$SLURM_COPY/results/accuracy.csv" ]]; then
    pass "SLURM run finished (exit 0) in $slurm_seconds s and wrote results/accuracy.csv"
else
    tail -n 40 "$SLURM_COPY/snakemake.out"
    fail "SLURM run exited $slurm_status after $slurm_seconds s"
fi

# which jobs went through the scheduler: Snakemake's log names their SLURM ids, the
# plugin keeps one log per job in .snakemake/slurm_logs/rule_<rule>/<id>.log (with
# --slurm-keep-successful-logs) and slurmctld still lists them (MinJobAge)
ids=$(submitted_ids "$SLURM_COPY/snakemake.out" | tr '\n' ' ')
n_ids=$(wc -w <<<"$ids")
n_logs=$(find "$SLURM_COPY/.snakemake/slurm_logs" -name '*.log' 2>/dev/null | wc -l)
n_train_logs=$(find "$SLURM_COPY/.snakemake/slurm_logs/rule_train" -name '*.log' 2>/dev/null | wc -l)
n_completed=0
for id in $ids; do
    [[ $(squeue -h --states=all -j "$id" -o %T 2>/dev/null) == COMPLETED ]] && n_completed=$((n_completed + 1))
done
say "SLURM job ids in Snakemake's log: ${ids:-none}"
say "SLURM logs per rule: $(cd "$SLURM_COPY/.snakemake/slurm_logs" 2>/dev/null && for d in rule_*; do printf '%s=%s ' "${d#rule_}" "$(find "$d" -name '*.log' | wc -l)"; done)"
if (( n_ids > 0 && n_ids == n_logs && n_ids == n_completed && n_train_logs == 4 )); then
    pass "$n_ids jobs went through SLURM (4 of them train), all COMPLETED in squeue"
else
    fail "jobs through SLURM: $n_ids ids in the log, $n_logs SLURM logs ($n_train_logs train, 4 expected), $n_completed COMPLETED"
fi
# what a train job asked SLURM for: CPUs from threads (1 here), memory and time limit
# from the profile
train_id=$(find "$SLURM_COPY/.snakemake/slurm_logs/rule_train" -name '*.log' 2>/dev/null | head -n 1 | xargs -r basename | sed 's/\.log$//')
train_request=$( [[ -n "$train_id" ]] && squeue -h --states=all -j "$train_id" -o '%C|%m|%l' 2>/dev/null)
IFS='|' read -r req_cpus req_mem req_time <<<"${train_request:-||}"
if [[ "$req_cpus" == 1 && -n "$req_mem" && "$req_mem" != 0 && -n "$req_time" && "$req_time" != UNLIMITED ]]; then
    pass "train job $train_id asked SLURM for $req_cpus CPU (threads), $req_mem memory, time limit $req_time"
else
    fail "train job ${train_id:-?} request: cpus '${req_cpus}', memory '${req_mem}', time '${req_time}'"
fi
on_slurm=""
for rule in all report preview_noise; do
    [[ -d "$SLURM_COPY/.snakemake/slurm_logs/rule_$rule" ]] && on_slurm+=" $rule"
done
if [[ -z "$on_slurm" ]]; then
    pass "the local rules (all, report, preview_noise) ran on the submitting host"
else
    fail "rules that should be localrules went to SLURM:$on_slurm"
fi

say "run 1b: the same settings locally (--profile profiles/local --cores 2)"
LOCAL_COPY=$(copy_repo local-run)
start=$(now)
run_snakemake "$LOCAL_COPY" snakemake.out \
    --profile profiles/local --cores 2 --configfile config.yaml tests/cluster/e2e_small.yaml
local_status=$?
local_seconds=$(elapsed "$start" "$(now)")
if (( local_status == 0 )) && [[ -s "$LOCAL_COPY/results/accuracy.csv" ]]; then
    pass "local run finished (exit 0) in $local_seconds s"
else
    tail -n 40 "$LOCAL_COPY/snakemake.out"
    fail "local run exited $local_status after $local_seconds s"
fi
echo "WALL TIME: SLURM run $slurm_seconds s, local run (--cores 2) $local_seconds s"

if [[ -s "$SLURM_COPY/results/accuracy.csv" && -s "$LOCAL_COPY/results/accuracy.csv" ]] \
    && cmp -s "$SLURM_COPY/results/accuracy.csv" "$LOCAL_COPY/results/accuracy.csv"; then
    pass "results/accuracy.csv is identical on SLURM and locally ($(($(wc -l <"$LOCAL_COPY/results/accuracy.csv") - 1)) rows)"
else
    diff "$SLURM_COPY/results/accuracy.csv" "$LOCAL_COPY/results/accuracy.csv" 2>&1 | head -n 20
    fail "results/accuracy.csv differs between the SLURM and the local run (or is missing)"
fi

# --- 2. a training job that fails on SLURM -----------------------------------------
say "run 2: tests/cluster/e2e_diverge.yaml on SLURM (the train job must fail)"
FAIL_COPY=$(copy_repo failing-run)
start=$(now)
run_snakemake "$FAIL_COPY" snakemake.out \
    --profile profiles/slurm --configfile config.yaml tests/cluster/e2e_diverge.yaml \
    "${CLUSTER_OPTS[@]}"
fail_status=$?
fail_seconds=$(elapsed "$start" "$(now)")
train_log=$(find "$FAIL_COPY/logs/train" -name '*.log' 2>/dev/null | head -n 1)
fail_ids=$(submitted_ids "$FAIL_COPY/snakemake.out" | tr '\n' ' ')
train_ids=""
for id in $fail_ids; do
    # the plugin's logs: .snakemake/slurm_logs/rule_<rule>/<wildcards>/<id>.log
    [[ -n $(find "$FAIL_COPY/.snakemake/slurm_logs/rule_train" -name "$id.log" 2>/dev/null) ]] && train_ids+="$id "
done
failed_states=""
for id in $train_ids; do
    failed_states+="$(squeue -h --states=all -j "$id" -o %T 2>/dev/null) "
done
say "failing run: exit $fail_status after $fail_seconds s; train SLURM jobs: ${train_ids:-none} (${failed_states:-no state})"
if (( fail_status != 0 && fail_status != 124 && fail_status != 137 )); then
    pass "Snakemake exited non-zero ($fail_status) when the train job failed"
else
    fail "Snakemake exited $fail_status for a workflow whose train job fails"
fi
if grep -q "Error in rule train" "$FAIL_COPY/snakemake.out"; then
    pass "Snakemake reported: $(grep -m 1 -o "Error in rule train.*" "$FAIL_COPY/snakemake.out")"
else
    tail -n 40 "$FAIL_COPY/snakemake.out"
    fail "Snakemake's output does not report the failed train job"
fi
if [[ -n "$train_ids" && "$failed_states" == *FAILED* && "$failed_states" != *COMPLETED* ]] \
    && [[ -n "$train_log" ]] && grep -q "training diverged" "$train_log"; then
    pass "the train job failed on SLURM (jobs ${train_ids% }: ${failed_states% }; the profile retries once) with 'training diverged' in ${train_log#"$FAIL_COPY"/}"
else
    [[ -n "$train_log" ]] && tail -n 20 "$train_log"
    fail "no SLURM train job that FAILED with 'training diverged' (ids: ${train_ids:-none}, states: ${failed_states:-none}, log: ${train_log:-none})"
fi

(( FAILED == 0 ))
