package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// benchStore is BENCH_MLFLOW_STORE: "sqlite" (the default, a file on /dev/shm or the
// temp directory, as the tests use) or "postgres" (a PostgreSQL cluster of its own, from
// Debian's postgresql package, on 127.0.0.1; MLflow needs psycopg2-binary, which
// scripts/bench.sh installs).
func benchStore() (string, error) {
	switch v := os.Getenv("BENCH_MLFLOW_STORE"); v {
	case "", "sqlite":
		return "sqlite", nil
	case "postgres":
		return v, nil
	default:
		return "", fmt.Errorf("BENCH_MLFLOW_STORE=%q: must be sqlite or postgres", v)
	}
}

// postgres is a throwaway PostgreSQL cluster: initdb in dir, one database "mlflow",
// trust authentication on 127.0.0.1, fsync as PostgreSQL ships it (on).
type postgres struct {
	dir, port string
	asUser    []string // the command prefix running a binary as the cluster's owner
}

// startPostgres creates and starts the cluster. PostgreSQL refuses to run as root: as
// root, it runs as the postgres user the package creates.
func startPostgres(ctx context.Context, dir string) (*postgres, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	p := &postgres{dir: filepath.Join(dir, "pgdata")}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("BENCH_MLFLOW_STORE=postgres as root needs the postgres user (apt-get install postgresql): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.MkdirAll(p.dir, 0o700); err != nil {
			return nil, err
		}
		// The cluster's parent must be reachable by postgres too.
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.Chown(p.dir, uid, gid); err != nil {
			return nil, err
		}
		p.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	_, p.port, _ = net.SplitHostPort(l.Addr().String())
	l.Close()
	if out, err := p.run(ctx, filepath.Join(bin, "initdb"), "-D", p.dir, "-U", "mlflow", "--auth=trust", "-E", "UTF8", "--no-instructions"); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if out, err := p.run(ctx, filepath.Join(bin, "pg_ctl"), "-D", p.dir, "-w", "-t", "60", "-l", filepath.Join(p.dir, "server.log"),
		"-o", "-h 127.0.0.1 -p "+p.port+" -k "+p.dir+" -c max_connections=200", "start"); err != nil {
		return nil, fmt.Errorf("pg_ctl start: %w\n%s", err, out)
	}
	if out, err := p.run(ctx, filepath.Join(bin, "createdb"), "-h", "127.0.0.1", "-p", p.port, "-U", "mlflow", "mlflow"); err != nil {
		p.stop()
		return nil, fmt.Errorf("createdb: %w\n%s", err, out)
	}
	return p, nil
}

// URI is the MLflow backend store URI of the cluster's database. The driver is named:
// SQLAlchemy 2.1 takes a bare postgresql:// to mean psycopg 3, not the psycopg2-binary
// MLflow's documentation asks for ("No module named 'psycopg'").
func (p *postgres) URI() string {
	return "postgresql+psycopg2://mlflow@127.0.0.1:" + p.port + "/mlflow"
}

func (p *postgres) stop() {
	bin, err := postgresBin()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = p.run(ctx, filepath.Join(bin, "pg_ctl"), "-D", p.dir, "-m", "fast", "-w", "stop")
}

func (p *postgres) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, p.asUser...), name), args...)
	return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
}

// postgresBin is the directory of initdb and pg_ctl: Debian keeps them out of PATH, in
// /usr/lib/postgresql/<major>/bin.
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("BENCH_MLFLOW_STORE=postgres: PostgreSQL's initdb not found (apt-get install postgresql)")
}
