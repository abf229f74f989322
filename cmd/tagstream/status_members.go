package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/internal/status"
)

// What `status --group` adds to the buckets: each live member's /status, at the URL it advertises in its member
// record (group-status-url), for what the buckets do not hold (a write per poll would cost too much): each tag's
// last and next poll, lag and gaps, each token's budget left and state.

// memberWait is the longest status --group waits for one member's /status (--timeout when shorter): the members
// are asked at once, so a member that does not answer delays the report by this much at most.
const memberWait = 2 * time.Second

// askedMember is one live member in the report of status --group: as the buckets hold it, with what its /status
// answered (Answered), or why it could not be asked (Error).
type askedMember struct {
	group.MemberStatus
	// Answered reports whether the member's /status answered, as that member of this group; Error says why not
	// (no URL advertised, nothing answered, another process answered). Its tags then show what the buckets hold.
	Answered bool   `json:"answered"`
	Error    string `json:"error,omitempty"`
	// From its /status: its version, process, readiness (each check) and tokens.
	Version  string               `json:"version,omitempty"`
	Instance string               `json:"instance,omitempty"`
	Ready    bool                 `json:"ready"`
	Checks   []status.CheckResult `json:"checks,omitempty"`
	Tokens   []memberToken        `json:"tokens,omitempty"`
}

// memberToken is one token of a member as its /status shows it (fingerprint, budget left of its limit, parked or
// retired; never the token), with the fraction of the token's budget the member holds in the group and the
// token's state in words.
type memberToken struct {
	status.TokenStatus
	Share float64 `json:"share"`
	State string  `json:"state"`
}

// askMembers asks every member of r that advertises a status URL for its /status, all at once, each within wait
// (at most memberWait), and merges the answers into r: each answering member's readiness and tokens, and each tag
// it owns its poll, lag and gap figures (mergeAnswers). A member that cannot be asked keeps what the buckets hold
// and an Error saying why.
func askMembers(r *groupReport, client *http.Client, wait time.Duration) {
	wait = min(wait, memberWait)
	reports := make([]status.Report, len(r.Members))
	var wg sync.WaitGroup
	for i := range r.Members {
		m := &r.Members[i] // each goroutine writes its own element
		if m.StatusURL == "" {
			m.Error = "it advertises no status URL (it runs without metrics-addr, or a version without group-status-url)"
			continue
		}
		if err := group.CheckStatusURL(m.StatusURL); err != nil {
			// Written by something else than tagstream: not asked, and not printed (it may hold a secret).
			m.Error = "it advertises a status URL that is not usable: " + strings.TrimPrefix(err.Error(), group.ErrConfig.Error()+": ")
			m.StatusURL = ""
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			rep, err := status.Fetch(ctx, client, m.StatusURL)
			var untrusted *tls.CertificateVerificationError
			switch {
			case errors.Is(err, status.ErrNotStatus):
				m.Error = err.Error()
			case errors.As(err, &untrusted):
				m.Error = statusURLOf(m.StatusURL) + " answered with a certificate that is not trusted (" +
					untrusted.Err.Error() + "): give ca-file the CA that signed it"
			case err != nil:
				m.Error = "nothing answered at " + statusURLOf(m.StatusURL) + ": " + dialCause(err, wait)
			case rep.Group == nil || rep.Group.Group != r.Group || rep.Group.Self != m.Name:
				m.Error = statusURLOf(m.StatusURL) + " answered as " + describeAnswer(rep) + ", not as member " + m.Name +
					" of group " + r.Group + " (check its group-status-url)"
			default:
				m.Answered, reports[i] = true, rep
			}
		})
	}
	wg.Wait()
	mergeAnswers(r, reports)
}

// statusURLOf is the /status URL of a status URL a member advertises, as status.Fetch asks it.
func statusURLOf(u string) string {
	if s, err := status.StatusURL(u); err == nil {
		return s
	}
	return u
}

// describeAnswer names who made a /status report that is not the one expected.
func describeAnswer(r status.Report) string {
	who := "instance " + cmp.Or(r.Instance, "(unnamed)")
	if r.Group == nil {
		return who + ", a single instance"
	}
	return fmt.Sprintf("%s, member %s of group %s", who, r.Group.Self, r.Group.Group)
}

// mergeAnswers folds the reports of the members that answered (reports[i] is r.Members[i]'s) into r: their
// readiness and tokens (with the share the buckets hold), and for each tag its owner's line: the tag's owner is
// the one the buckets name, so a tag that another member still lists (a hand-off under way) takes nothing from it.
func mergeAnswers(r *groupReport, reports []status.Report) {
	shares := make(map[string]map[string]float64) // fingerprint -> member -> share
	for _, ts := range r.Inspection.Tokens {
		shares[ts.Fingerprint] = ts.Shares
	}
	lines := make(map[string]map[string]status.TagStatus) // member -> tag -> its line
	asOf := make(map[string]time.Time)                    // member -> the time of its report
	for i := range r.Members {
		m := &r.Members[i]
		if !m.Answered {
			continue
		}
		rep := reports[i]
		m.Version, m.Instance, m.Ready, m.Checks = rep.Version, rep.Instance, rep.Ready, rep.Checks
		m.Tokens = make([]memberToken, 0, len(rep.Tokens))
		for _, t := range rep.Tokens {
			share := shares[t.Fingerprint][m.Name]
			m.Tokens = append(m.Tokens, memberToken{TokenStatus: t, Share: share, State: memberTokenState(t, share, rep.Time)})
		}
		byTag := make(map[string]status.TagStatus, len(rep.Tags))
		for _, t := range rep.Tags {
			byTag[t.Tag] = t
		}
		lines[m.Name], asOf[m.Name] = byTag, rep.Time
	}
	for i := range r.Tags {
		t := &r.Tags[i]
		line, ok := lines[t.Owner][t.Tag]
		if t.Owner == "" || !ok {
			t.State = groupTagState(*t, r.CursorError != "")
			if _, answered := lines[t.Owner]; t.Owner != "" && !answered {
				t.State += " (from the buckets: " + t.Owner + " not asked)"
			}
			continue
		}
		t.Reported = true
		t.OwnerCursor, t.CatchUp = line.Cursor, line.CatchUp
		t.LastPoll, t.LastAttempt, t.NextPoll = line.LastPoll, line.LastAttempt, line.NextPoll
		t.LagSeconds, t.Published, t.Gaps, t.LastError = line.LagSeconds, line.Published, line.Gaps, line.LastError
		t.Segments = line.Segments
		t.State = cmp.Or(line.State, line.Describe())
		if !line.LastPoll.IsZero() || line.RateEstimate > 0 {
			// The owner's estimate now, newer than the one it stored in the group.
			t.RateEstimate, t.RateAt = line.RateEstimate, asOf[t.Owner]
		}
	}
}

// memberTokenState says in words what a member's token does: retired, parked, not used by it (no share of its budget),
// or ok.
func memberTokenState(t status.TokenStatus, share float64, now time.Time) string {
	switch {
	case t.Retired:
		return "retired (the API rejected it)"
	case t.ParkedUntil.After(now):
		return "parked until " + t.ParkedUntil.UTC().Format("15:04:05")
	case share <= 0:
		return "unused: no share of its budget"
	}
	return "ok"
}
