package durable

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

// childEnv makes the test binary act as a writer that is killed mid-run.
const childEnv = "GLASSMESH_TRACE_STORE_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	goleak.VerifyTestMain(m)
}

// runChild writes the fixture and many more traces, says "written N" and
// waits to be killed.
func runChild(dir string) int {
	d, err := Open(Config{DataDir: dir}, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	go func() { _ = d.Run(ctx) }()
	for _, b := range storetest.NewFixture().Batches() {
		if err := d.WriteTraces(ctx, b); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	g := storetest.NewGen(time.Now())
	for i := range killBatches {
		if err := d.WriteTraces(ctx, g.Batch(i, 10)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fmt.Printf("written %d\n", killBatches*10)
	select {}
}

const killBatches = 50

// killChild runs the child writer in dir and SIGKILLs it once it says
// it has written.
func killChild(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if kerr := cmd.Process.Signal(syscall.SIGKILL); kerr != nil {
		t.Fatal(kerr)
	}
	_ = cmd.Wait()
	if err != nil || !strings.HasPrefix(line, "written") {
		t.Fatalf("child said %q, %v", line, err)
	}
}
