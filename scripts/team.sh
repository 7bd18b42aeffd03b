#!/usr/bin/env bash
# make team-up | team-down: what a team runs, on this one machine: PostgreSQL (Debian's package) holding the
# MLflow store and the sweeps' Optuna studies, and `mlflow server` over it with an artifact folder, on free local
# ports. `up` prints the two exports that point every target there, and reuses what is already up.
# Data: $TEAM_DIR (default .team/): pg/ (the cluster, its log), artifacts/, mlflow.log, *.port, mlflow.pid.
set -euo pipefail
TEAM=$(realpath -m "${TEAM_DIR:-.team}")
PY=${PY:-.venv/bin/python}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }  # postgres refuses root
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg_up() { [ -f "$TEAM/pg.port" ] && as_pg "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$(cat "$TEAM/pg.port")"; }
mlflow_up() { [ -f "$TEAM/mlflow.port" ] && curl -sf "http://127.0.0.1:$(cat "$TEAM/mlflow.port")/health" >/dev/null; }

up() {
	[ -x "$PGBIN/initdb" ] || { echo "error: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql" >&2; exit 2; }
	mkdir -p "$TEAM/pg" "$TEAM/artifacts"
	[ "$(id -u)" = 0 ] && chown postgres "$TEAM/pg"
	if [ ! -f "$TEAM/pg/data/PG_VERSION" ]; then  # local connections only, no password: a real host sets one
		as_pg "$PGBIN/initdb" -D "$TEAM/pg/data" -U mlflow --auth=trust >"$TEAM/pg/initdb.log"
	fi
	if ! pg_up; then
		free_port >"$TEAM/pg.port"
		as_pg "$PGBIN/pg_ctl" -D "$TEAM/pg/data" -l "$TEAM/pg/postgres.log" -w start \
			-o "-h 127.0.0.1 -p $(cat "$TEAM/pg.port") -k $TEAM/pg" >/dev/null
	fi
	local pg="postgresql+psycopg2://mlflow@127.0.0.1:$(cat "$TEAM/pg.port")"  # SQLAlchemy 2.1's default is psycopg 3
	for db in mlflow optuna; do
		out=$(as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$(cat "$TEAM/pg.port")" -U mlflow "$db" 2>&1) ||
			[[ $out == *"already exists"* ]] || { echo "error: createdb $db: $out" >&2; exit 1; }
	done
	if ! mlflow_up; then
		free_port >"$TEAM/mlflow.port"
		# not MLflow 3's GenAI job runner (8 more processes, ~1.7 GB), unless asked for
		MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}" \
			setsid "$(dirname "$PY")/mlflow" server --host 127.0.0.1 --port "$(cat "$TEAM/mlflow.port")" \
			--backend-store-uri "$pg/mlflow" --artifacts-destination "$TEAM/artifacts" >"$TEAM/mlflow.log" 2>&1 &
		echo $! >"$TEAM/mlflow.pid"
		for _ in $(seq 180); do  # the first start creates the schema
			mlflow_up || ! kill -0 "$(cat "$TEAM/mlflow.pid")" 2>/dev/null && break
			sleep 1
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
	if [ -f "$TEAM/pg/data/postmaster.pid" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$TEAM/pg/data" -m fast -w stop >/dev/null
	fi
	echo "stopped; the data stays in $TEAM (rm -rf it to start afresh)"
}

case "${1:-}" in
	up) up ;;
	down) down ;;
	*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
