package status

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// WriteTable writes r for a terminal, as of now: a line on the instance and its readiness (each failing check
// named), one row per tag (owner, cursor, last and next poll, estimated rate, lag, gaps and state) sorted by lag,
// longest first (tags not polled since the start come first: their lag is not known yet), and one row per token
// (fingerprint, budget left, state). Long cursors are shortened; --json shows them whole.
func WriteTable(w io.Writer, r Report, now time.Time) error {
	var b strings.Builder
	who := "tagstream"
	if r.Version != "" {
		who += " " + r.Version
	}
	if r.Instance != "" {
		who += " (" + r.Instance + ")"
	}
	ready := "ready"
	if !r.Ready {
		var failing []string
		for _, c := range r.Checks {
			if !c.OK {
				failing = append(failing, c.Name+": "+c.Error)
			}
		}
		ready = "NOT READY: " + strings.Join(failing, "; ")
	}
	fmt.Fprintf(&b, "%s, sink %s: %s\n\n", who, orDash(r.Sink), ready)

	tags := slices.Clone(r.Tags)
	slices.SortStableFunc(tags, func(a, b TagStatus) int {
		if c := cmp.Compare(lagKey(b), lagKey(a)); c != 0 {
			return c
		}
		return cmp.Compare(a.Tag, b.Tag)
	})
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TAG\tOWNER\tCURSOR\tLAST POLL\tNEXT POLL\tRATE/s\tLAG\tGAPS\tSTATE")
	for _, t := range tags {
		cursor := short(t.Cursor, 16)
		switch {
		case t.Cursor == "" && t.SavedCursor != "":
			cursor = "saved " + short(t.SavedCursor, 16)
		case t.SavedCursor != "" && t.Cursor != t.SavedCursor:
			cursor += " (unsaved)" // acknowledged, its checkpoint write is being retried
		}
		state := t.State
		if state == "" {
			state = t.Describe()
		}
		lag := "-"
		if !t.LastPoll.IsZero() {
			lag = Age(time.Duration(t.LagSeconds * float64(time.Second)))
		}
		rate := "-"
		if !t.LastPoll.IsZero() || t.RateEstimate > 0 {
			rate = fmt.Sprintf("%.2f", t.RateEstimate)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", printable(t.Tag), orDash(printable(t.Owner)), orDash(printable(cursor)),
			ago(t.LastPoll, now), until(t.NextPoll, now), rate, lag, t.Gaps, printable(state))
	}
	if len(tags) == 0 {
		fmt.Fprintln(tw, "(no tags yet: polling starts once the broker answers)")
	}
	tw.Flush()

	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOKEN\tFINGERPRINT\tBUDGET LEFT\tSTATE")
	for _, t := range r.Tokens {
		left := "?"
		if t.Remaining >= 0 {
			left = fmt.Sprint(t.Remaining)
		}
		state := "ok"
		switch {
		case t.Retired:
			state = "retired (the API rejected it)"
		case t.ParkedUntil.After(now):
			state = fmt.Sprintf("parked until %s (%s)", t.ParkedUntil.UTC().Format("15:04:05"), until(t.ParkedUntil, now))
		}
		kind := ""
		if t.ClientID {
			kind = " (client id)"
		}
		fmt.Fprintf(tw, "%d%s\t%s\t%s / %d\t%s\n", t.Index+1, kind, t.Fingerprint, left, t.Limit, state)
	}
	tw.Flush()
	_, err := io.WriteString(w, b.String())
	return err
}

// lagKey orders tags by lag; a tag not polled since the start sorts first.
func lagKey(t TagStatus) float64 {
	if t.LastPoll.IsZero() {
		return math.Inf(1)
	}
	return t.LagSeconds
}

// ago says how long before now t was: "3s ago", "-" for the zero time.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return Age(now.Sub(t)) + " ago"
}

// until says how long after now t is: "in 2s", "due" once passed, "-" for the zero time (a poll in flight).
func until(t, now time.Time) string {
	switch {
	case t.IsZero():
		return "-"
	case !t.After(now):
		return "due"
	}
	return "in " + Age(t.Sub(now))
}

// Age prints a duration compactly, as the status tables do: 850ms, 1.2s, 3m4s, 2h5m.
func Age(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

// short keeps at most n runes of s, eliding the middle.
func short(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	head := (n - 1) / 2
	return string(r[:head]) + "…" + string(r[len(r)-(n-1-head):])
}

// printable replaces what a terminal would interpret (control and format characters, from an error text or a
// cursor) by a visible escape, so that a report cannot move the cursor or change colours.
func printable(s string) string {
	if !strings.ContainsFunc(s, nonPrintable) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if nonPrintable(r) {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func nonPrintable(r rune) bool { return r != ' ' && !unicode.IsPrint(r) || r == utf8.RuneError }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
