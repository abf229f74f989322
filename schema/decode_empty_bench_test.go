package schema

import "testing"

// emptyPage is the answer to most polls at scale: a quiet tag's page without media.
const emptyPage = `{"pagination":{"deprecation_warning":"next_max_id and min_id are deprecated for this endpoint; use min_tag_id and max_tag_id instead","min_tag_id":"1234567890123456789"},"meta":{"code":200},"data":[]}`

func TestDecodeEmptyPage(t *testing.T) {
	p, err := DecodePage(200, "application/json", []byte(emptyPage))
	if err != nil {
		t.Fatal(err)
	}
	if p.Media == nil || len(p.Media) != 0 || p.Meta.Code != 200 || p.Pagination.MinTagID != "1234567890123456789" {
		t.Errorf("DecodePage = %+v, want no media (not nil), code 200 and the min_tag_id", p)
	}
}

// BenchmarkDecodeEmptyPage measures the decoding of a page without media (allocs/op: what each quiet poll costs
// the garbage collector).
func BenchmarkDecodeEmptyPage(b *testing.B) {
	body := []byte(emptyPage)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodePage(200, "application/json", body); err != nil {
			b.Fatal(err)
		}
	}
}
