package topology

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"go.uber.org/goleak"
)

// sseEvent is one server-sent event.
type sseEvent struct{ name, data string }

// readEvents sends the stream's events to a channel until it ends.
func readEvents(resp *http.Response) <-chan sseEvent {
	ch := make(chan sseEvent, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "":
				ch <- ev
				ev = sseEvent{}
			}
		}
	}()
	return ch
}

func openStream(t *testing.T, client *http.Client, url string) (*http.Response, <-chan sseEvent) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp, readEvents(resp)
}

func nextEvent(t *testing.T, ch <-chan sseEvent, within time.Duration) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return ev
	case <-time.After(within):
		t.Fatalf("no event within %s", within)
	}
	return sseEvent{}
}

func TestStreamSendsTheGraphAndItsChangesWithoutLeaks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g, err := New(Config{MinRefresh: 50 * time.Millisecond}, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := fixtureCalls()
	if err := g.ConsumeRequests(ctx, requests(calls[:1], time.Now())); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	g.Register(mux)
	srv := httptest.NewServer(mux)
	client := &http.Client{Transport: &http.Transport{}}
	const refresh = 200 * time.Millisecond
	url := srv.URL + PathStream + "?refresh=200ms&graphType=app"

	var streams []*http.Response
	var events []<-chan sseEvent
	for range 3 { // clients with the same parameters share one broadcaster
		resp, ch := openStream(t, client, url)
		streams, events = append(streams, resp), append(events, ch)
		ev := nextEvent(t, ch, 2*refresh)
		if ev.name != "graph" || !strings.Contains(ev.data, `"app":"reviews"`) {
			t.Fatalf("first event %q %.200s", ev.name, ev.data)
		}
		strictDecode(t, []byte(ev.data))
	}
	g.streams.mu.Lock()
	if n := len(g.streams.m); n != 1 {
		t.Errorf("%d broadcasters for one parameter set", n)
	}
	g.streams.mu.Unlock()

	if err := g.ConsumeRequests(ctx, requests(calls[4:6], time.Now())); err != nil {
		t.Fatal(err)
	}
	for i, ch := range events {
		ev := nextEvent(t, ch, 2*refresh+100*time.Millisecond)
		if ev.name != "graph" || !strings.Contains(ev.data, `"app":"ratings"`) {
			t.Fatalf("client %d: update %q %.300s", i, ev.name, ev.data)
		}
	}
	for _, resp := range streams {
		_ = resp.Body.Close()
	}
	for _, ch := range events {
		for range ch { // drain until the reader goroutine ends
		}
	}
	srv.Close()
	client.CloseIdleConnections()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStreamErrorEventOnFailure(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	q := failingQuery
	g, err := New(Config{MinRefresh: 50 * time.Millisecond, PreferQuerier: true}, q, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	g.Register(mux)
	srv := httptest.NewServer(mux)
	client := &http.Client{Transport: &http.Transport{}}
	resp, ch := openStream(t, client, srv.URL+PathStream+"?refresh=100ms")
	ev := nextEvent(t, ch, time.Second)
	if ev.name != "error" || !strings.Contains(ev.data, `"error":`) {
		t.Errorf("event %q %q, want an error event", ev.name, ev.data)
	}
	_ = resp.Body.Close()
	for range ch {
	}
	srv.Close()
	client.CloseIdleConnections()
	_ = g.Close()
}

func TestSlowSubscriberIsDroppedWithoutBlockingOthers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g, err := New(Config{StreamQueue: 2, MinRefresh: time.Millisecond}, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	o.Refresh = time.Hour // only the first tick runs by itself
	b, slow := g.subscribe(o)
	_, fast := g.subscribe(o)
	received := 0
	for i := range 10 {
		b.publish(frame("graph", []byte{byte('0' + i)}), true)
		select {
		case <-fast.ch:
			received++
		case <-time.After(time.Second):
			t.Fatal("the fast subscriber was blocked")
		}
	}
	select {
	case <-slow.dropped:
	default:
		t.Fatal("the slow subscriber was not dropped")
	}
	if received != 10 {
		t.Errorf("fast subscriber got %d of 10", received)
	}
	g.unsubscribe(b, slow)
	g.unsubscribe(b, fast)
	_ = g.Close()
}

// failingQuery fails every query.
func failingQuery(context.Context, string, time.Time) (promql.Vector, error) {
	return nil, context.DeadlineExceeded
}

func TestCloseEndsConnectedStreams(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g, err := New(Config{MinRefresh: 50 * time.Millisecond}, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	g.Register(mux)
	srv := httptest.NewServer(mux)
	client := &http.Client{Transport: &http.Transport{}}
	resp, ch := openStream(t, client, srv.URL+PathStream+"?refresh=100ms")
	if ev := nextEvent(t, ch, time.Second); ev.name != "graph" {
		t.Fatalf("first event %q", ev.name)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ch:
		for ok {
			_, ok = <-ch
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the stream did not end on Close")
	}
	_ = resp.Body.Close()
	srv.Close()
	client.CloseIdleConnections()
}

func TestStreamBadParametersToAnEventSourceAreAnErrorEvent(t *testing.T) {
	srv := newFixtureServer(t)
	req, err := http.NewRequest(http.MethodGet, srv.URL+PathStream+"?graphType=pods", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ev := nextEvent(t, readEvents(resp), time.Second)
	if resp.StatusCode != http.StatusOK || ev.name != "error" || !strings.Contains(ev.data, `"error":"graphType:`) {
		t.Errorf("status %d event %q %q, want an error event naming graphType", resp.StatusCode, ev.name, ev.data)
	}
}
