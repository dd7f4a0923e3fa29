# Sourced by .ci/run: make sure PostgreSQL, MariaDB and Redis are installed, running on 127.0.0.1 and
# reachable with a role and database for the tests, then export their URLs. Installs from
# Debian's packages where a server is missing; starts one that is installed but stopped.

apt_install() {
  if [ -z "${apt_updated:-}" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "$what did not come up" >&2; return 1
}

ensure_postgres() {
  command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
  fi
  wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
  su postgres -c "psql -qtAc \"ALTER USER postgres PASSWORD 'lethe'\"" >/dev/null
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname = 'lethe_test'\"" | grep -q 1 ||
    su postgres -c "createdb lethe_test"
  export LETHE_TEST_POSTGRES_URL=postgres://postgres:lethe@127.0.0.1:5432/lethe_test
}

ensure_mariadb() {
  command -v mariadbd >/dev/null 2>&1 || apt_install mariadb-server
  if ! mariadb-admin ping --silent >/dev/null 2>&1; then
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  fi
  wait_for MariaDB mariadb-admin ping --silent
  mariadb -uroot <<'SQL'
CREATE DATABASE IF NOT EXISTS lethe_test;
CREATE USER IF NOT EXISTS 'lethe'@'localhost' IDENTIFIED BY 'lethe';
CREATE USER IF NOT EXISTS 'lethe'@'127.0.0.1' IDENTIFIED BY 'lethe';
GRANT ALL ON lethe_test.* TO 'lethe'@'localhost';
GRANT ALL ON lethe_test.* TO 'lethe'@'127.0.0.1';
SQL
  export LETHE_TEST_MYSQL_URL=mysql://lethe:lethe@127.0.0.1:3306/lethe_test
}

ensure_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
  fi
  wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
  export LETHE_TEST_REDIS_URL=redis://127.0.0.1:6379/0
}

ensure_postgres
ensure_mariadb
ensure_redis
