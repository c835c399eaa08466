// Package kubetest starts a real Kubernetes API server for tests: Debian's
// etcd as a child process and kube-apiserver in-process (from
// k8s.io/kubernetes/cmd/kube-apiserver/app/testing), and installs CRDs.
package kubetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Etcd is an etcd server running as a child process.
type Etcd struct {
	// URL is the client URL (http://127.0.0.1:PORT).
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
	dir  string
}

// StartEtcd starts the etcd binary found on PATH (Debian's etcd-server, 3.4)
// on two free loopback ports with its data in a new directory under parent,
// and waits until it answers /health. Its output goes to log. The child gets
// SIGKILL when this process dies (Pdeathsig), so a killed test binary leaves
// no etcd behind.
func StartEtcd(ctx context.Context, parent string, log io.Writer) (*Etcd, error) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, fmt.Errorf("etcd is not on PATH (apt-get install etcd-server): %w", err)
	}
	dir, err := os.MkdirTemp(parent, "etcd")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	cmd := exec.Command(bin,
		"--name=test",
		"--data-dir="+filepath.Join(dir, "data"),
		"--listen-client-urls="+client,
		"--advertise-client-urls="+client,
		"--listen-peer-urls="+peer,
		"--initial-advertise-peer-urls="+peer,
		"--initial-cluster=test="+peer,
		"--logger=zap",
		"--log-level=warn",
	)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	e := &Etcd{URL: client, cmd: cmd, done: make(chan struct{}), dir: dir}
	go func() { cmd.Wait(); close(e.done) }()
	if err := e.waitHealthy(ctx, 30*time.Second); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Etcd) waitHealthy(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-e.done:
			return fmt.Errorf("etcd exited before it was healthy: %v", e.cmd.ProcessState)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+"/health", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("etcd at %s not healthy after %v", e.URL, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills etcd, waits for it and removes its data directory.
func (e *Etcd) Stop() {
	if e.cmd.Process != nil {
		_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
	}
	os.RemoveAll(e.dir)
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, errors.Join(errors.New("find a free port"), err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
