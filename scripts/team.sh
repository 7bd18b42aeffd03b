#!/usr/bin/env bash
# make team-up | team-down: what a team runs, on this one machine: PostgreSQL (Debian's package) holding the
# MLflow store and the sweeps' Optuna studies, and `mlflow server` over it with an artifact folder, on free local
# ports. `up` prints the two exports that point every target there, and reuses what is already up.
# Data: $TEAM_DIR (default .team/): pg/ (the cluster, its log; see PG below), artifacts/, mlflow.log, *.port.
set -euo pipefail
TEAM=$(realpath -m "${TEAM_DIR:-.team}")
PY=${PY:-.venv/bin/python}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }  # postgres refuses root
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg_up() { [ -f "$TEAM/pg.port" ] && as_pg "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$(cat "$TEAM/pg.port")"; }
# The cluster: $TEAM/pg, or, where PostgreSQL's own user cannot enter $TEAM (as root, a clone under
# /root or a mktemp -d folder, mode 0700), a folder of that user's home named after $TEAM. `up` makes
# $TEAM first: were it judged before it exists, `up` and `down` would choose different folders.
if [ "${1:-}" = up ]; then mkdir -p "$TEAM"; fi
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$TEAM" 2>/dev/null; then
	PG=${PG_DIR:-/var/lib/postgresql/mnist-lab-$(printf %s "$TEAM" | sha1sum | cut -c1-12)}
else
	PG=${PG_DIR:-$TEAM/pg}
fi
mlflow_up() { [ -f "$TEAM/mlflow.port" ] && curl -sf "http://127.0.0.1:$(cat "$TEAM/mlflow.port")/health" >/dev/null; }

up() {
	[ -x "$PGBIN/initdb" ] || { echo "error: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql" >&2; exit 2; }
	mkdir -p "$PG" "$TEAM/artifacts"
	if [ "$(id -u)" = 0 ]; then chown postgres "$PG"; fi
	if [ ! -f "$PG/data/PG_VERSION" ]; then  # local connections only, no password: a real host sets one
		as_pg "$PGBIN/initdb" -D "$PG/data" -U mlflow --auth=trust >"$PG/initdb.log"
	fi
	if ! pg_up; then
		free_port >"$TEAM/pg.port"
		as_pg "$PGBIN/pg_ctl" -D "$PG/data" -l "$PG/postgres.log" -w start \
			-o "-h 127.0.0.1 -p $(cat "$TEAM/pg.port") -k $PG" >/dev/null
	fi
	local pg="postgresql+psycopg2://mlflow@127.0.0.1:$(cat "$TEAM/pg.port")"  # SQLAlchemy 2.1's default is psycopg 3
	for db in mlflow optuna; do
		out=$(as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$(cat "$TEAM/pg.port")" -U mlflow "$db" 2>&1) ||
			[[ $out == *"already exists"* ]] || { echo "error: createdb $db: $out" >&2; exit 1; }
	done
	if ! mlflow_up; then
		rm -f "$TEAM/mlflow.port"
		: >"$TEAM/mlflow.log"  # there before the loop below reads it (the server's redirect may come later)
		# not MLflow 3's GenAI job runner (8 more processes, ~1.7 GB), unless asked for; port 0: the
		# server picks a free one and says which (no race with another process for a port chosen here)
		MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}" \
			PYTHONWARNINGS="ignore:starlette.middleware.wsgi is deprecated" \
			setsid "$(dirname "$PY")/mlflow" server --host 127.0.0.1 --port 0 \
			--backend-store-uri "$pg/mlflow" --artifacts-destination "$TEAM/artifacts" >"$TEAM/mlflow.log" 2>&1 &
		echo $! >"$TEAM/mlflow.pid"
		for _ in $(seq 360); do  # the first start creates the schema
			port=$(sed -n 's|.*Uvicorn running on http://127.0.0.1:\([0-9]*\).*|\1|p' "$TEAM/mlflow.log" | head -n1)
			[ -n "$port" ] && echo "$port" >"$TEAM/mlflow.port"
			mlflow_up || ! kill -0 "$(cat "$TEAM/mlflow.pid")" 2>/dev/null && break
			sleep 0.5
		done
		mlflow_up || { echo "error: mlflow server did not start; see $TEAM/mlflow.log" >&2; tail -n 5 "$TEAM/mlflow.log" >&2; exit 1; }
	fi
	echo "export MLFLOW_TRACKING_URI=http://127.0.0.1:$(cat "$TEAM/mlflow.port")"
	echo "export STORAGE=$pg/optuna"
}

down() {
	if [ -f "$TEAM/mlflow.pid" ]; then  # the server and its workers: the session it was started in
		kill -- "-$(cat "$TEAM/mlflow.pid")" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$(cat "$TEAM/mlflow.pid")" 2>/dev/null || break; sleep 0.3; done
		rm -f "$TEAM/mlflow.pid" "$TEAM/mlflow.port"
	fi
	if [ -f "$PG/data/postmaster.pid" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$PG/data" -m fast -w stop >/dev/null
	fi
	local kept=$TEAM
	case $PG in "$TEAM"/*) ;; *) kept="$TEAM and $PG" ;; esac  # the cluster outside $TEAM (as root)
	echo "stopped; the data stays in $kept (rm -rf to start afresh)"
}

case "${1:-}" in
	up) up ;;
	down) down ;;
	*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
