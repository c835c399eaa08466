// Command render prints glassmesh's Helm chart rendered with helm's Go
// packages, like `helm template`, for test harnesses that must not import
// helm themselves (e2e/k8s applies the output to a real API server):
//
//	go run ./cmd/render [--set replicaCount=2] [--namespace NS] [--release NAME] [--crds]
//
// With the defaults (release glassmesh in glassmesh-system) the output is
// exactly helmtest.Render's. --crds prints the chart's crds/ files instead
// (Helm installs them first, unrendered).
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/strvals"

	"github.com/glassmesh/glassmesh/deploy/helmtest"
)

type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, ",") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	var sets setFlags
	flag.Var(&sets, "set", "a value as `helm --set` takes it, key=value[,key=value]; repeatable")
	namespace := flag.String("namespace", helmtest.Namespace, "the release's namespace")
	release := flag.String("release", helmtest.ReleaseName, "the release's name")
	crds := flag.Bool("crds", false, "print the chart's crds/ instead of its templates")
	flag.Parse()
	if err := run(sets, *namespace, *release, *crds); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(sets []string, namespace, release string, crds bool) error {
	ch, err := helmtest.Load()
	if err != nil {
		return err
	}
	if crds {
		files := helmtest.CRDs(ch)
		names := make([]string, 0, len(files))
		for name := range files {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Printf("---\n# Source: %s\n%s\n", name, strings.Trim(string(files[name]), "\n"))
		}
		return nil
	}
	values := map[string]any{}
	for _, s := range sets {
		if err := strvals.ParseInto(s, values); err != nil {
			return fmt.Errorf("--set %s: %w", s, err)
		}
	}
	out, err := helmtest.RenderRelease(ch, values, release, namespace)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}
