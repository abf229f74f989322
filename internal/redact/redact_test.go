package redact

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
)

const secret = "1234.abcd+efgh/ijkl:mn@op"

func TestStringReplacesEveryForm(t *testing.T) {
	r := New(secret, "")
	for _, form := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret)} {
		got := r.String("before " + form + " after")
		if strings.Contains(got, form) || !strings.Contains(got, Placeholder) {
			t.Errorf("String kept the form %q: %q", form, got)
		}
	}
}

func TestNilAndZeroRedactNothing(t *testing.T) {
	var nilR *Redactor
	if got := nilR.String("x"); got != "x" {
		t.Fatalf("nil Redactor changed the text: %q", got)
	}
	if got := (&Redactor{}).String("x"); got != "x" {
		t.Fatalf("zero Redactor changed the text: %q", got)
	}
}

func TestErrorKeepsIsButHidesTheCause(t *testing.T) {
	r := New(secret)
	base := fmt.Errorf("dial with %s: %w", secret, io.ErrUnexpectedEOF)
	err := r.Error(base)
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("secret survived: %q", err)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal("errors.Is lost the sentinel")
	}
	if errors.Unwrap(err) != nil {
		t.Fatal("the redacted error unwraps to the original text")
	}
	clean := errors.New("nothing secret")
	if r.Error(clean) != clean {
		t.Fatal("an error without a secret was replaced")
	}
	if r.Error(nil) != nil {
		t.Fatal("nil became an error")
	}
}

func TestTruncateRedactsBeforeCutting(t *testing.T) {
	r := New(secret)
	// The secret straddles the cut: cutting first would leave its head in the text.
	msg := strings.Repeat("x", 290) + secret + strings.Repeat("y", 50)
	got := r.Truncate(msg, 300)
	if strings.Contains(got, secret[:8]) {
		t.Fatalf("a fragment of the secret survived: %q", got[280:])
	}
	if len(got) > 300+len("…") {
		t.Fatalf("not cut: %d bytes", len(got))
	}
	if got := r.Truncate("héllo", 2); got != "h…" {
		t.Fatalf("cut inside a rune: %q", got)
	}
}

func TestURLHidesCredentials(t *testing.T) {
	r := New()
	got := r.URL("https://user:pw@api.example/v1/tags/x/media/recent?access_token=AAA&count=33&client_id=CCC")
	for _, leak := range []string{"pw", "AAA", "CCC", "user"} {
		if strings.Contains(got, leak) {
			t.Errorf("URL kept %q: %s", leak, got)
		}
	}
	if !strings.Contains(got, "count=33") {
		t.Errorf("URL lost a harmless parameter: %s", got)
	}
}
