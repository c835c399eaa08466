package metrics

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// PreferQuery takes the shared store's answer when it has one, the local
// one when the store holds nothing of what was asked, and the store's
// error when it fails (a replica's share is not the mesh's).
func TestPreferQuery(t *testing.T) {
	one := func(v float64) promql.Vector {
		return promql.Vector{{Metric: labels.FromStrings("__name__", "x"), F: v}}
	}
	var storeVec promql.Vector
	var storeErr error
	var asked []string
	q := PreferQuery(
		func(_ context.Context, q string, _ time.Time) (promql.Vector, error) {
			asked = append(asked, "store:"+q)
			return storeVec, storeErr
		},
		func(_ context.Context, q string, _ time.Time) (promql.Vector, error) {
			asked = append(asked, "local:"+q)
			return one(2), nil
		})
	for _, c := range []struct {
		name  string
		vec   promql.Vector
		err   error
		want  float64
		asked int
	}{
		{"the store answers", one(1), nil, 1, 1},
		{"the store has nothing", nil, nil, 2, 2},
		{"the store fails", one(1), errors.New("down"), 0, 1},
	} {
		storeVec, storeErr, asked = c.vec, c.err, nil
		got, err := q(t.Context(), "x", time.Now())
		if c.err != nil {
			if !errors.Is(err, c.err) || len(asked) != c.asked {
				t.Errorf("%s: %v %v after %v, want the store's error from %d query", c.name, got, err, asked, c.asked)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0].F != c.want || len(asked) != c.asked {
			t.Errorf("%s: %v %v after %v, want %v from %d queries", c.name, got, err, asked, c.want, c.asked)
		}
	}
}
