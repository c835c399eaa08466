package dashboards

import (
	"encoding/json"
	"io/fs"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// Values for every variable the dashboards use, so their PromQL parses.
var testVars = map[string]string{"namespace": "default", "service": "reviews", "workload": "reviews-v1", "reporter": "source", "slo": "reviews-availability"}

func TestGrafanaPanelsParse(t *testing.T) {
	qs, err := GrafanaQueries()
	if err != nil {
		t.Fatal(err)
	}
	perBoard := map[string]int{}
	p := parser.NewParser(parser.Options{})
	for _, q := range qs {
		perBoard[q.Dashboard]++
		expr := q.Expand(testVars, "1m")
		if strings.Contains(expr, "$") {
			t.Errorf("%s / %s: a variable is left unexpanded: %s", q.Dashboard, q.Panel, expr)
			continue
		}
		if _, err := p.ParseExpr(expr); err != nil {
			t.Errorf("%s / %s: %v\n%s", q.Dashboard, q.Panel, err, expr)
		}
	}
	for _, f := range []string{"mesh-overview.json", "service.json", "workload.json", "slo.json"} {
		if perBoard[f] < 5 {
			t.Errorf("%s has %d PromQL queries, want a real dashboard", f, perBoard[f])
		}
	}
}

// TestGrafanaDashboardsAreImportable checks what Grafana needs to import a
// dashboard file: a unique uid, a title, the schema version, unique panel
// ids, and data sources chosen by variable rather than a fixed uid.
func TestGrafanaDashboardsAreImportable(t *testing.T) {
	fsys := GrafanaDashboards()
	files, _ := fs.Glob(fsys, "*.json")
	uids := map[string]string{}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			b, _ := fs.ReadFile(fsys, f)
			var d struct {
				UID           string `json:"uid"`
				Title         string `json:"title"`
				SchemaVersion int    `json:"schemaVersion"`
				Panels        []struct {
					ID         int            `json:"id"`
					Datasource *grafanaSource `json:"datasource"`
				} `json:"panels"`
				Templating struct {
					List []struct{ Name, Type string } `json:"list"`
				} `json:"templating"`
			}
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatal(err)
			}
			if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
				t.Errorf("uid %q title %q schemaVersion %d", d.UID, d.Title, d.SchemaVersion)
			}
			if other, dup := uids[d.UID]; dup {
				t.Errorf("uid %s is also %s's", d.UID, other)
			}
			uids[d.UID] = f
			ids := map[int]bool{}
			for _, p := range d.Panels {
				if ids[p.ID] {
					t.Errorf("panel id %d twice", p.ID)
				}
				ids[p.ID] = true
				if p.Datasource != nil && !strings.HasPrefix(p.Datasource.UID, "${") {
					t.Errorf("panel %d has a fixed data source uid %q", p.ID, p.Datasource.UID)
				}
			}
			vars := map[string]string{}
			for _, v := range d.Templating.List {
				vars[v.Name] = v.Type
			}
			if vars["datasource"] != "datasource" {
				t.Errorf("no datasource variable: %v", vars)
			}
		})
	}
}
