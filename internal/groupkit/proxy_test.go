package groupkit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

func TestProxyRecordsFeedRequests(t *testing.T) {
	sim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/tags/slow/media/recent" {
			w.WriteHeader(http.StatusTooManyRequests)
		}
		_, _ = io.WriteString(w, "{}")
	}))
	defer sim.Close()
	target, _ := url.Parse(sim.URL)
	log := &PollLog{}
	p, err := StartProxy(target, sim.Client().Transport, "m1", log)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, path := range []string{"/tags/hot/media/recent", "/media/1", "/tags/slow/media/recent"} {
		resp, err := http.Get(p.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	recs := log.Records()
	if len(recs) != 2 || recs[0].Tag != "hot" || recs[0].Status != 200 || recs[1].Tag != "slow" ||
		recs[1].Status != http.StatusTooManyRequests || recs[0].Member != "m1" || recs[1].End.Before(recs[1].Start) {
		t.Errorf("recorded %+v, want hot (200) and slow (429) by m1", recs)
	}
}
