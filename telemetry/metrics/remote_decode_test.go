package metrics

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func TestDecodeVector(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       string // the samples, or the error's start
		wantErr    bool
	}{
		{"a vector", `{"status":"success","data":{"resultType":"vector","result":[
			{"metric":{"job":"api","__name__":"up"},"value":[1700000000.5,"1"]},
			{"metric":{},"value":[1700000000,"NaN"]}]},"warnings":["w"]}`,
			`{__name__="up", job="api"} 1700000000500 1; {} 1700000000000 NaN`, false},
		{"data before status", `{"data":{"result":[{"metric":{"a":"b"},"value":[1,"+Inf"]}],"resultType":"vector"},"status":"success"}`,
			`{a="b"} 1000 +Inf`, false},
		{"a scalar", `{"status":"success","data":{"resultType":"scalar","result":[2,"0.25"]}}`, `{} 2000 0.25`, false},
		{"an empty vector", `{"status":"success","data":{"resultType":"vector","result":[]}}`, ``, false},
		{"histograms are skipped", `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"histogram":[1,{"count":"1","sum":"1","buckets":[[0,"0","1","1"]]}]}]}}`, ``, false},
		{"an API error", `{"status":"error","errorType":"bad_data","error":"parse error"}`, "bad_data: parse error", true},
		{"a matrix", `{"status":"success","data":{"resultType":"matrix","result":[]}}`, "want a vector, got matrix", true},
		{"a cut answer", `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1,"1"]}`, "malformed answer", true},
		{"not JSON", `<html>bad gateway</html>`, "malformed answer", true},
		{"a value that is not a number", `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}`, "malformed answer", true},
		{"no result", `{"status":"success","data":{"resultType":"vector"}}`, "malformed answer: no data.result", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vec, err := decodeVector(strings.NewReader(tc.body))
			if tc.wantErr {
				if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
					t.Fatalf("err %v, want one starting %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range vec {
				got = append(got, fmt.Sprintf("%s %d %v", s.Metric, s.T, s.F))
			}
			if g := strings.Join(got, "; "); g != tc.want {
				t.Fatalf("got %s\nwant %s", g, tc.want)
			}
		})
	}
}

func TestCapReaderFailsPastItsLimit(t *testing.T) {
	body := `{"status":"success","data":{"resultType":"vector","result":[` + strings.Repeat(`{"metric":{},"value":[1,"1"]},`, 100) + `{"metric":{},"value":[1,"1"]}]}}`
	if _, err := decodeVector(&capReader{r: strings.NewReader(body), left: 500}); err == nil || !strings.Contains(err.Error(), "MiB") {
		t.Fatalf("err %v, want the answer refused as too large", err)
	}
	if vec, err := decodeVector(&capReader{r: strings.NewReader(body), left: int64(len(body))}); err != nil || len(vec) != 101 {
		t.Fatalf("%d samples, err %v; want 101", len(vec), err)
	}
}

func FuzzDecodeVector(f *testing.F) {
	for _, s := range []string{
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1,"1"]}]}}`,
		`{"status":"success","data":{"resultType":"scalar","result":[2,"0.25"]}}`,
		`{"status":"error","errorType":"bad_data","error":"x"}`,
		`{"data":{"result":[{"metric":{"a":"b","a":"c"},"value":[1,"1","2"]}]}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		vec, err := decodeVector(strings.NewReader(body))
		if err != nil {
			return
		}
		// Whatever decodes has its labels in order, as promql.Vector needs.
		for _, s := range vec {
			prev := ""
			s.Metric.Range(func(l labels.Label) {
				if l.Name < prev {
					t.Fatalf("labels out of order: %s", s.Metric)
				}
				prev = l.Name
			})
		}
	})
}
