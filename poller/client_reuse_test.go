package poller

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tagstream/tagstream/schema"
)

// TestAnswersKeepTheirTextWhenBodyBuffersAreReused checks that what a page holds survives the next answers: an
// empty page's body buffer serves the next answer (see send), so nothing of a page may refer to it.
func TestAnswersKeepTheirTextWhenBodyBuffersAreReused(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		i := n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if i%3 == 0 {
			// A page with media, padded to other lengths than the empty pages.
			fmt.Fprintf(w, `{"meta":{"code":200},"data":[{"id":"m%d","created_time":"1443556800","type":"image"}],`+
				`"pagination":{"min_tag_id":"%d","next_max_tag_id":"x%s"}}`, i, 1000+i, strings.Repeat("z", int(i)))
			return
		}
		fmt.Fprintf(w, `{"pagination":{"min_tag_id":"%d","next_max_tag_id":"%s","deprecation_warning":"w%d"},"meta":{"code":200},"data":[]}`,
			1000+i, strings.Repeat("y", int(i)), i)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL+"/v1", nil)
	type kept struct {
		page *schema.Page
		want string
	}
	describe := func(p *schema.Page) string {
		s := fmt.Sprintf("%s|%s|%s|%d|%s", p.Pagination.MinTagID, p.Pagination.NextMaxTagID,
			p.Pagination.DeprecationWarning, p.Meta.Code, p.Meta.ErrorType)
		for _, m := range p.Media {
			s += "|" + m.ID + "|" + m.CreatedTime + "|" + string(m.Raw)
		}
		return s
	}
	var pages []kept
	for range 30 {
		a, err := c.send(context.Background(), c.pool.tokens[0], query{tag: "sunset", count: 33})
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, kept{a.page, describe(a.page)})
	}
	for i, k := range pages {
		if got := describe(k.page); got != k.want {
			t.Errorf("answer %d changed after later answers: %q, was %q", i+1, got, k.want)
		}
	}
}

func TestReadBody(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, 1, 1023, 1024, 1025, 5000} {
		want := strings.Repeat("a", size)
		for _, start := range [][]byte{nil, make([]byte, 0, 1), make([]byte, 0, 1024)} {
			got, err := readBody(io.LimitReader(strings.NewReader(want), int64(size)), start)
			if err != nil || string(got) != want {
				t.Errorf("readBody of %d bytes into cap %d = %d bytes, %v; want all of them", size, cap(start), len(got), err)
			}
		}
	}
	got, err := readBody(strings.NewReader(strings.Repeat("b", maxBody+10)), nil)
	if err != nil || len(got) != maxBody+1 {
		t.Errorf("readBody of an oversized body = %d bytes, %v; want maxBody+1 = %d", len(got), err, maxBody+1)
	}
}
