package promapi

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAPIWorksWithPromtool runs Prometheus's own CLI client against the
// API: promtool query instant|range|series|labels must read it as it
// reads a Prometheus server.
func TestAPIWorksWithPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus); .ci/run installs it")
	}
	e := newAPIEnv(t, apiEnvOptions{})
	apiFixture(t, e)
	at := apiSeconds(apiT0 + 60_000)
	tests := []struct {
		name string
		args []string
		want []string // lines of the output, in order
	}{
		{"an instant sum prints one sample", []string{"query", "instant", "--time=" + at, e.srv.URL, "sum(up)"},
			[]string{"{} => 1 @[1700000060]"}},
		{"an instant query prints every series with labels", []string{"query", "instant", "--time=" + at, e.srv.URL, "up"},
			[]string{`up{instance="a:9090", job="api"} => 1 @[1700000060]`, `up{instance="b:9090", job="api"} => 0 @[1700000060]`}},
		{"a range query prints the matrix", []string{"query", "range", "--start=" + at, "--end=" + apiSeconds(apiT0+90_000),
			"--step=30s", e.srv.URL, "sum(http_requests_total)"},
			[]string{"{} =>", "40 @[1700000060]", "60 @[1700000090]"}},
		{"series lists both up series", []string{"query", "series", "--match=up", "--start=" + apiSeconds(apiT0), "--end=" + at, e.srv.URL},
			[]string{`{__name__="up", instance="a:9090", job="api"}`, `{__name__="up", instance="b:9090", job="api"}`}},
		{"labels lists the job values", []string{"query", "labels", "--start=" + apiSeconds(apiT0), "--end=" + at, e.srv.URL, "job"}, []string{"api"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(promtool, tt.args...).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(tt.args, " "), err, out)
			}
			got := strings.Fields(strings.Join(strings.Fields(string(out)), " "))
			want := strings.Fields(strings.Join(tt.want, " "))
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("promtool printed:\n%s\nwant:\n%s", out, strings.Join(tt.want, "\n"))
			}
		})
	}
	t.Run("bad PromQL fails with the parser's message", func(t *testing.T) {
		out, err := exec.Command(promtool, "query", "instant", e.srv.URL, "sum(up").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "bad_data") || !strings.Contains(string(out), "unclosed left parenthesis") {
			t.Fatalf("err=%v output:\n%s", err, out)
		}
	})
}
