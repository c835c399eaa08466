package dashboards

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed grafana/*.json
var grafana embed.FS

// GrafanaDashboards returns the Grafana dashboards (JSON, Grafana ≥ 10
// schema) that use glassmesh as their Prometheus and Jaeger data sources.
func GrafanaDashboards() fs.FS {
	sub, err := fs.Sub(grafana, "grafana")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// GrafanaQuery is one PromQL expression of a dashboard panel, with Grafana's
// variables ($namespace, $__rate_interval, ...) still in it.
type GrafanaQuery struct {
	Dashboard string // file name
	Panel     string // panel title
	Expr      string
}

// Expand replaces Grafana variables: $name and ${name} from vars, and
// $__rate_interval, $__interval and $__range with rate, as Grafana would.
func (q GrafanaQuery) Expand(vars map[string]string, rate string) string {
	pairs := []string{"$__rate_interval", rate, "${__rate_interval}", rate, "$__interval", rate, "$__range", rate}
	// Longest names first, so $service_name is not read as $service.
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for _, k := range names {
		pairs = append(pairs, "${"+k+"}", vars[k], "$"+k, vars[k])
	}
	return strings.NewReplacer(pairs...).Replace(q.Expr)
}

type grafanaPanel struct {
	Title      string         `json:"title"`
	Type       string         `json:"type"`
	Datasource *grafanaSource `json:"datasource"`
	Targets    []struct {
		Expr       string         `json:"expr"`
		Datasource *grafanaSource `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's panels
}

type grafanaSource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// GrafanaQueries lists the PromQL of every panel of every dashboard.
func GrafanaQueries() ([]GrafanaQuery, error) {
	fsys := GrafanaDashboards()
	files, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, err
	}
	var out []GrafanaQuery
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		var d struct {
			Panels []grafanaPanel `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", path.Join("dashboards/grafana", f), err)
		}
		var walk func([]grafanaPanel)
		walk = func(ps []grafanaPanel) {
			for _, p := range ps {
				walk(p.Panels)
				for _, t := range p.Targets {
					ds := t.Datasource
					if ds == nil {
						ds = p.Datasource
					}
					if t.Expr != "" && (ds == nil || ds.Type == "prometheus") {
						out = append(out, GrafanaQuery{Dashboard: f, Panel: p.Title, Expr: t.Expr})
					}
				}
			}
		}
		walk(d.Panels)
	}
	return out, nil
}
