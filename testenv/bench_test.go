package testenv

import (
	"io"
	"net/http"
	"testing"
)

// benchServer starts a plain-HTTP simulator with one tag of 500 media and a limit that never binds.
func benchServer(b *testing.B) *Server {
	b.Helper()
	s, err := New(Config{
		PlainHTTP:       true,
		Tokens:          []string{"bench-token"},
		RequestsPerHour: 1 << 30,
		TimeScale:       3600 * 100, // a 10 ms window keeps the limiter's log short
		Seed:            42,
		Tags:            []TagConfig{{Name: "coffee", Initial: 500}},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func fetchPage(b *testing.B, c *http.Client, url string, buf []byte) int {
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for {
		m, err := resp.Body.Read(buf)
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d", resp.StatusCode)
	}
	return n
}

// BenchmarkRecentPage measures pages of tags/{tag}/media/recent with count=33 served per second over loopback
// plain HTTP, client and server in the same process: one client goroutine (serial) and GOMAXPROCS client
// goroutines (parallel).
func BenchmarkRecentPage(b *testing.B) {
	s := benchServer(b)
	url := s.URL() + "/tags/coffee/media/recent?access_token=bench-token&count=33"
	b.Run("serial", func(b *testing.B) {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		buf := make([]byte, 64<<10)
		var bytes int
		b.ResetTimer()
		for b.Loop() {
			bytes = fetchPage(b, c, url, buf)
		}
		b.SetBytes(int64(bytes))
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
	})
	b.Run("parallel", func(b *testing.B) {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 64<<10)
			for pb.Next() {
				fetchPage(b, c, url, buf)
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
	})
}

// discardWriter is a ResponseWriter that drops the body, to measure the handler alone.
type discardWriter struct {
	h http.Header
	n int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

// BenchmarkRecentPageHandler measures the simulator's own work for one count=33 page (routing, authentication,
// rate limit, page assembly from pre-encoded media), without the network and the HTTP client.
func BenchmarkRecentPageHandler(b *testing.B) {
	s := benchServer(b)
	req, err := http.NewRequest(http.MethodGet, s.URL()+"/tags/coffee/media/recent?access_token=bench-token&count=33", nil)
	if err != nil {
		b.Fatal(err)
	}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.n = 0
		s.serveAPI(w, req)
	}
	b.SetBytes(int64(w.n))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
}
