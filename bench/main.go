// Command bench runs glassmesh's benchmarks and side-by-side comparisons and
// writes BENCHMARKS.md: the machine, the command to reproduce, every figure,
// and the ratios against the named peers. `make bench` runs it.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// suite is one `go test -bench` run and how to present it.
type suite struct {
	Title   string
	About   string   // what is measured, and the target
	Dir     string   // directory to run in (a module of its own), "" for the repo root
	Pkg     string   // package path, relative to Dir
	Bench   string   // -bench regexp
	Args    []string // extra go test args (-benchtime, custom flags)
	Ratios  []ratio  // comparisons to print
	Metrics []string // units to show, in order; empty shows every unit
}

// ratio compares one metric of two benchmarks: Num / Den.
type ratio struct {
	Label    string
	Num, Den string // benchmark names (without the Benchmark prefix and -N suffix)
	Unit     string
	DenUnit  string // the denominator's unit when it differs from Unit
}

// result is one benchmark line.
type result struct {
	Name    string
	N       int
	Metrics map[string]float64
	Units   []string // in the order printed
}

func main() {
	out := flag.String("out", "BENCHMARKS.md", "file to write")
	only := flag.String("only", "", "run only suites whose title contains this")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	// With -only, the other suites keep their sections from the last run.
	previous := sections(*out)
	var md bytes.Buffer
	header(&md)
	ss := suites()
	for i, s := range ss {
		if *only != "" && !strings.Contains(s.Title, *only) {
			md.WriteString(previous[s.Title])
			continue
		}
		logger.Info(fmt.Sprintf("[%d/%d] %s", i+1, len(ss), s.Title), "pkg", s.Pkg, "bench", s.Bench)
		start := time.Now()
		results, cmdline, err := run(s)
		if err != nil {
			logger.Error("suite failed", "suite", s.Title, "error", err)
			fmt.Fprintf(&md, "## %s\n\nFailed: `%v`\n\n", s.Title, err)
			continue
		}
		logger.Info("done", "suite", s.Title, "took", time.Since(start).Round(time.Second), "results", len(results))
		render(&md, s, cmdline, results)
	}
	if err := os.WriteFile(*out, md.Bytes(), 0o644); err != nil {
		logger.Error("write", "error", err)
		os.Exit(1)
	}
	logger.Info("wrote " + *out)
}

// sections reads the "## Title" sections of an earlier BENCHMARKS.md, by
// title; a missing file has none.
func sections(path string) map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	parts := strings.Split("\n"+string(b), "\n## ")
	for _, p := range parts[1:] {
		title, _, _ := strings.Cut(p, "\n")
		// Split took the newline before "## "; sections end in a blank line.
		out[title] = strings.TrimRight("## "+p, "\n") + "\n\n"
	}
	return out
}

func header(w io.Writer) {
	fmt.Fprintf(w, "# glassmesh benchmarks\n\n")
	fmt.Fprintf(w, "Written by `make bench` (`go run ./bench`) on %s. Figures are from one run on the machine below;\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "re-run `make bench` to reproduce, or the `go test` command shown under each table.\n\n")
	fmt.Fprintf(w, "| machine | |\n| --- | --- |\n")
	fmt.Fprintf(w, "| CPU | %s |\n| cores | %d |\n| memory | %s |\n| Go | %s |\n| commit | %s |\n\n",
		cpuModel(), runtime.NumCPU(), memTotal(), runtime.Version(), gitCommit())
}

func run(s suite) ([]result, string, error) {
	// The package comes before Args: go test stops reading its own flags at
	// the first one it does not know (a test binary's custom flag).
	args := append([]string{"test", "-run", "^$", "-bench", s.Bench, "-benchmem", s.Pkg}, s.Args...)
	cmd := exec.Command("go", args...)
	cmd.Dir = s.Dir
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	cmdline := "go " + shellJoin(args)
	if s.Dir != "" {
		cmdline = "cd " + s.Dir + " && " + cmdline
	}
	return parse(&buf), cmdline, err
}

// shellJoin quotes the arguments a shell would mangle.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "|^$*? ") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// parse reads `go test -bench` output lines: Name-N  iters  v unit  v unit ...
func parse(r io.Reader) []result {
	var out []result
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		res := result{Name: trimName(f[0]), N: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			res.Metrics[f[i+1]] = v
			res.Units = append(res.Units, f[i+1])
		}
		out = append(out, res)
	}
	return out
}

// trimName drops the Benchmark prefix and the -GOMAXPROCS suffix.
func trimName(s string) string {
	s = strings.TrimPrefix(s, "Benchmark")
	if i := strings.LastIndex(s, "-"); i > 0 {
		if _, err := strconv.Atoi(s[i+1:]); err == nil {
			s = s[:i]
		}
	}
	return s
}

func render(w io.Writer, s suite, cmdline string, results []result) {
	fmt.Fprintf(w, "## %s\n\n%s\n\n", s.Title, s.About)
	units := s.Metrics
	if len(units) == 0 {
		seen := map[string]bool{}
		for _, r := range results {
			for _, u := range r.Units {
				if !seen[u] {
					seen[u] = true
					units = append(units, u)
				}
			}
		}
	}
	fmt.Fprintf(w, "| benchmark | %s |\n|---|%s\n", strings.Join(units, " | "), strings.Repeat("---:|", len(units)))
	for _, r := range results {
		cells := make([]string, len(units))
		for i, u := range units {
			if v, ok := r.Metrics[u]; ok {
				cells[i] = format(v)
			}
		}
		fmt.Fprintf(w, "| %s | %s |\n", r.Name, strings.Join(cells, " | "))
	}
	fmt.Fprintln(w)
	for _, q := range s.Ratios {
		du := q.DenUnit
		if du == "" {
			du = q.Unit
		}
		num, den := find(results, q.Num), find(results, q.Den)
		if num == nil || den == nil || den.Metrics[du] == 0 {
			continue
		}
		fmt.Fprintf(w, "- %s: **%.2f×** (%s %s vs %s %s)\n", q.Label, num.Metrics[q.Unit]/den.Metrics[du],
			format(num.Metrics[q.Unit]), q.Unit, format(den.Metrics[du]), du)
	}
	fmt.Fprintf(w, "\nReproduce: `%s`\n\n", cmdline)
}

func find(rs []result, name string) *result {
	for i := range rs {
		if rs[i].Name == name {
			return &rs[i]
		}
	}
	return nil
}

func format(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
	}
	return "?"
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}
