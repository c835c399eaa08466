package kubetest

import (
	"fmt"
	"io"
	"os"
	"sync"

	"k8s.io/kubernetes/test/utils/ktesting"
)

// ProcessTB is a ktesting.TB that lives as long as the test binary: a
// TestMain has no *testing.T, but StartTestServer wants one for its logs
// and cleanups. Logs go to a writer; cleanups run on Close, last first.
type ProcessTB struct {
	name string
	out  io.Writer

	mu       sync.Mutex
	failed   bool
	cleanups []func()
}

var _ ktesting.TB = (*ProcessTB)(nil)

// NewProcessTB returns a ProcessTB named name that logs to out.
func NewProcessTB(name string, out io.Writer) *ProcessTB {
	return &ProcessTB{name: name, out: out}
}

// Close runs the registered cleanups, last registered first.
func (p *ProcessTB) Close() {
	p.mu.Lock()
	cs := p.cleanups
	p.cleanups = nil
	p.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

func (p *ProcessTB) Attr(key, value string) {}
func (p *ProcessTB) Chdir(dir string)       { _ = os.Chdir(dir) }
func (p *ProcessTB) Cleanup(f func()) {
	p.mu.Lock()
	p.cleanups = append(p.cleanups, f)
	p.mu.Unlock()
}
func (p *ProcessTB) Error(args ...any) { p.Log(args...); p.Fail() }
func (p *ProcessTB) Errorf(format string, args ...any) {
	p.Logf(format, args...)
	p.Fail()
}
func (p *ProcessTB) Fail() {
	p.mu.Lock()
	p.failed = true
	p.mu.Unlock()
}

// FailNow panics: outside a test there is no goroutine to end quietly.
func (p *ProcessTB) FailNow() { p.Fail(); panic(p.name + ": failed") }
func (p *ProcessTB) Failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}
func (p *ProcessTB) Fatal(args ...any) { p.Log(args...); p.FailNow() }
func (p *ProcessTB) Fatalf(format string, args ...any) {
	p.Logf(format, args...)
	p.FailNow()
}
func (p *ProcessTB) Helper()                          {}
func (p *ProcessTB) Log(args ...any)                  { fmt.Fprintln(p.out, args...) }
func (p *ProcessTB) Logf(format string, args ...any)  { fmt.Fprintf(p.out, format+"\n", args...) }
func (p *ProcessTB) Name() string                     { return p.name }
func (p *ProcessTB) Setenv(key, value string)         { _ = os.Setenv(key, value) }
func (p *ProcessTB) Skip(args ...any)                 { p.Log(args...); p.SkipNow() }
func (p *ProcessTB) Skipf(format string, args ...any) { p.Logf(format, args...); p.SkipNow() }
func (p *ProcessTB) SkipNow()                         { panic(p.name + ": skipped") }
func (p *ProcessTB) Skipped() bool                    { return false }
func (p *ProcessTB) TempDir() string {
	d, err := os.MkdirTemp("", "kubetest")
	if err != nil {
		panic(err)
	}
	p.Cleanup(func() { os.RemoveAll(d) })
	return d
}
