#!/usr/bin/env bash
# test.sh is the project's single test command: it makes sure a PostgreSQL server is reachable,
# exports BRIDGE_TEST_DATABASE_URL for the store tests, and runs `go test -race -count=1 ./...`.
# A whole run (no packages named) first runs the static checks: gofmt, go vet, staticcheck and
# the compose file's validation.
#
#   scripts/test.sh                      # every package
#   scripts/test.sh ./bridge/postgres/...  # arguments go to go test; ./... is added unless a
#   scripts/test.sh -run TestPerKeyFIFO    # package pattern is among them
#
# Postgres is found, in order:
#   1. BRIDGE_TEST_DATABASE_URL, when set;
#   2. a server on 127.0.0.1:5432 that lets user postgres in without a password;
#   3. a Debian cluster (pg_lsclusters), started for the run and stopped afterwards, if it lets
#      user postgres in without a password over TCP;
#   4. a throwaway cluster: initdb into a temporary directory with trust auth and fsync off, on
#      port 55432 or the next free one, removed afterwards. PostgreSQL is installed with apt-get
#      first when no server binaries exist.
# BRIDGE_TEST_FORCE_LOCAL_CLUSTER=1 skips 1-3 (to exercise 4 on a machine that has a server).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { echo "test.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

# cleanup_cmds run on exit, last registered first.
cleanup_cmds=()
cleanup() {
	local i
	for ((i = ${#cleanup_cmds[@]} - 1; i >= 0; i--)); do
		eval "${cleanup_cmds[i]}" >/dev/null 2>&1 || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# port_answers HOST PORT succeeds when something accepts TCP connections there.
port_answers() {
	timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# pg_answers HOST PORT succeeds when a Postgres server accepts connections there.
pg_answers() {
	if command -v pg_isready >/dev/null 2>&1; then
		pg_isready -q -h "$1" -p "$2" -t 2
	else
		port_answers "$1" "$2"
	fi
}

# pg_login URL succeeds when the URL logs in without asking for a password. Without psql it
# can only trust that the server answers.
pg_login() {
	if command -v psql >/dev/null 2>&1; then
		PGCONNECT_TIMEOUT=5 psql -w -X -q -A -t -c 'SELECT 1' "$1" >/dev/null 2>&1
	else
		return 0
	fi
}

# wait_for HOST PORT waits up to 30 s for a server to accept connections.
wait_for() {
	local i
	for ((i = 0; i < 60; i++)); do
		pg_answers "$1" "$2" && return 0
		sleep 0.5
	done
	return 1
}

# STATICCHECK_VERSION is pinned so the checks do not change under us; it comes from the Go
# module proxy.
STATICCHECK_VERSION=v0.8.2

# static_checks runs gofmt, go vet, staticcheck and validates the compose file. No Dockerfile
# linter installs from Debian or the Go module proxy, so the Dockerfile's properties are tested
# in cmd/bridge/container_test.go instead.
static_checks() {
	local unformatted
	unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
	[[ -z $unformatted ]] || die "gofmt wants to change: $unformatted"
	go vet ./... || die "go vet failed"
	go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ./... || die "staticcheck failed"
	# The compose file is validated with Debian's docker-compose (`config` needs no engine).
	if ! command -v docker-compose >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose) >/dev/null 2>&1 || true
	fi
	if command -v docker-compose >/dev/null 2>&1; then
		local tmp
		tmp=$(mktemp -d)
		cp docker-compose.yml "$tmp/"
		cp .env.example "$tmp/.env"
		(cd "$tmp" && docker-compose -f docker-compose.yml config -q) || die "docker-compose.yml is invalid"
		rm -rf "$tmp"
	else
		log "docker-compose could not be installed; the compose file was not validated"
	fi
}

url_for() { echo "postgres://postgres@127.0.0.1:$1/postgres?sslmode=disable"; }

# as_postgres runs a command as the postgres OS user when we are root (initdb refuses root).
as_postgres() {
	if [[ $(id -u) -ne 0 ]]; then
		"$@"
	elif command -v runuser >/dev/null 2>&1; then
		runuser -u postgres -- "$@"
	else
		su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
	fi
}

# pg_bindir prints the bin directory of the newest installed PostgreSQL.
pg_bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
	[[ -n $d && -x $d/initdb ]] || d=$(dirname "$(command -v initdb 2>/dev/null || true)")
	[[ -x $d/initdb ]] && echo "$d"
}

try_debian_cluster() {
	command -v pg_lsclusters >/dev/null 2>&1 || return 1
	local ver name port status rest
	while read -r ver name port status rest; do
		[[ $ver =~ ^[0-9]+$ ]] || continue
		if [[ $status == online* ]]; then
			pg_login "$(url_for "$port")" || continue
			DB_URL=$(url_for "$port")
			return 0
		fi
		pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >/dev/null 2>&1 || continue
		cleanup_cmds+=("pg_ctlcluster --skip-systemctl-redirect $ver $name stop")
		if wait_for 127.0.0.1 "$port" && pg_login "$(url_for "$port")"; then
			DB_URL=$(url_for "$port")
			log "started PostgreSQL cluster $ver/$name on 127.0.0.1:$port for this run"
			return 0
		fi
		# It did not let us in without a password: stop it again rather than change its auth.
		pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" stop >/dev/null 2>&1 || true
	done < <(pg_lsclusters --no-header 2>/dev/null)
	return 1
}

install_postgres() {
	[[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1 ||
		die "no PostgreSQL server binaries found and cannot install them (need root and apt-get); set BRIDGE_TEST_DATABASE_URL"
	log "installing PostgreSQL with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null && apt-get install -y -qq postgresql >/dev/null ||
		die "apt-get install postgresql failed; set BRIDGE_TEST_DATABASE_URL"
}

start_throwaway_cluster() {
	local bin dir port attempt
	bin=$(pg_bindir) || {
		install_postgres
		bin=$(pg_bindir) || die "PostgreSQL installed but initdb not found"
	}
	# Under root the directory must be reachable by the postgres user, hence /tmp, not $TMPDIR.
	if [[ $(id -u) -eq 0 ]]; then
		dir=$(mktemp -d /tmp/bridge-pg.XXXXXX)
		chown postgres: "$dir"
	else
		dir=$(mktemp -d "${TMPDIR:-/tmp}/bridge-pg.XXXXXX")
	fi
	cleanup_cmds+=("rm -rf '$dir'")
	as_postgres "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
		die "initdb failed: $(tail -n 5 "$dir/initdb.log")"
	port=${BRIDGE_TEST_PG_PORT:-55432}
	for ((attempt = 0; attempt < 20; attempt++, port++)); do
		port_answers 127.0.0.1 "$port" && continue
		if as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 30 start \
			-o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
			>/dev/null 2>&1; then
			cleanup_cmds+=("$(printf '%q ' as_postgres "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop)")
			DB_URL=$(url_for "$port")
			log "started a throwaway PostgreSQL on 127.0.0.1:$port"
			return 0
		fi
		# Lost a race for the port with another server; try the next one.
	done
	die "could not start a throwaway PostgreSQL cluster: $(tail -n 5 "$dir/log" 2>/dev/null)"
}

DB_URL=""
if [[ ${BRIDGE_TEST_FORCE_LOCAL_CLUSTER:-} == 1 ]]; then
	start_throwaway_cluster
elif [[ -n ${BRIDGE_TEST_DATABASE_URL:-} ]]; then
	DB_URL=$BRIDGE_TEST_DATABASE_URL
	# The URL may hold a password: say what is wrong without quoting it.
	pg_login "$DB_URL" || die "BRIDGE_TEST_DATABASE_URL is set, but its server does not let us in"
elif pg_answers 127.0.0.1 5432 && pg_login "$(url_for 5432)"; then
	DB_URL=$(url_for 5432)
elif try_debian_cluster; then
	:
else
	start_throwaway_cluster
fi
export BRIDGE_TEST_DATABASE_URL=$DB_URL

if [[ ${BRIDGE_TEST_PRINT_URL:-} == 1 ]]; then
	# For the script's own checks: report which server would be used, without running tests.
	echo "$BRIDGE_TEST_DATABASE_URL"
	exit 0
fi

# Test everything unless the arguments name packages themselves.
args=("$@")
has_pkg=0
for a in "$@"; do
	case $a in
	. | ./* | ../* | github.com/*) has_pkg=1 ;;
	esac
done
((has_pkg)) || args+=(./...)

# A whole run (no packages named) also runs the static checks CI relies on.
((has_pkg)) || static_checks

# go test runs as a child, not exec'd, so that the cleanup above still stops the servers.
go test -race -count=1 "${args[@]}"
