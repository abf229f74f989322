package groupkit

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// Poll is one feed request of one member, as its recording proxy saw it.
type Poll struct {
	Member     string
	Tag        string
	Start, End time.Time
	Status     int
}

// PollLog collects the feed requests of every member. The zero value is ready for use; it is safe for concurrent
// use.
type PollLog struct {
	mu   sync.Mutex
	recs []Poll
}

// Add records p.
func (l *PollLog) Add(p Poll) {
	l.mu.Lock()
	l.recs = append(l.recs, p)
	l.mu.Unlock()
}

// Records returns a copy of the requests, ordered by start.
func (l *PollLog) Records() Polls {
	l.mu.Lock()
	out := slices.Clone(l.recs)
	l.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// Polls is a list of requests ordered by start (what Records returns); its methods are the queries the benchmark
// and the tests make.
type Polls []Poll

// FirstPoll returns the first request for tag that started at or after since by a member other than not (any
// member when not is ""), and whether there is one.
func (ps Polls) FirstPoll(tag, not string, since time.Time) (Poll, bool) {
	for _, p := range ps {
		if p.Tag == tag && p.Member != not && !p.Start.Before(since) {
			return p, true
		}
	}
	return Poll{}, false
}

// FirstPollBy returns member's first request for tag at or after since.
func (ps Polls) FirstPollBy(member, tag string, since time.Time) (Poll, bool) {
	for _, p := range ps {
		if p.Tag == tag && p.Member == member && !p.Start.Before(since) {
			return p, true
		}
	}
	return Poll{}, false
}

// PolledBy reports whether member requested tag's feed at or after since.
func (ps Polls) PolledBy(member, tag string, since time.Time) bool {
	_, ok := ps.FirstPollBy(member, tag, since)
	return ok
}

// LongestGap returns, over the given tags, the longest time between two consecutive request starts of one tag
// (by any member) within [from, to], counting from `from` to a tag's first request and from its last to `to`,
// and the tag.
func (ps Polls) LongestGap(tags []string, from, to time.Time) (time.Duration, string) {
	var worst time.Duration
	worstTag := ""
	for _, tag := range tags {
		prev := from
		for _, p := range ps {
			if p.Tag != tag || p.Start.Before(from) || p.Start.After(to) {
				continue
			}
			if g := p.Start.Sub(prev); g > worst {
				worst, worstTag = g, tag
			}
			prev = p.Start
		}
		if g := to.Sub(prev); g > worst {
			worst, worstTag = g, tag
		}
	}
	return worst, worstTag
}

// LongestGapBetween returns the longest time between two consecutive request starts of tag within [from, to):
// unlike LongestGap, only between requests (the edges of the span do not count).
func (ps Polls) LongestGapBetween(tag string, from, to time.Time) time.Duration {
	var prev time.Time
	var worst time.Duration
	for _, p := range ps {
		if p.Tag != tag || p.Start.Before(from) || !p.Start.Before(to) {
			continue
		}
		if !prev.IsZero() && p.Start.Sub(prev) > worst {
			worst = p.Start.Sub(prev)
		}
		prev = p.Start
	}
	return worst
}

// GapAcross returns the time from tag's last request that started before at (by any member) to its first request
// that started at or after at by a member other than from: how long the tag went unpolled across the event. It is
// false when the tag was not polled before at or not (yet) again by another member.
func (ps Polls) GapAcross(tag, from string, at time.Time) (time.Duration, bool) {
	var last time.Time
	for _, p := range ps {
		if p.Tag != tag {
			continue
		}
		if p.Start.Before(at) {
			last = p.Start
			continue
		}
		if p.Member != from {
			if last.IsZero() {
				return 0, false
			}
			return p.Start.Sub(last), true
		}
	}
	return 0, false
}

// GapsAcross returns GapAcross for each of tags, leaving out the tags it is false for.
func (ps Polls) GapsAcross(tags []string, from string, at time.Time) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, tag := range tags {
		if g, ok := ps.GapAcross(tag, from, at); ok {
			out[tag] = g
		}
	}
	return out
}

// Handoffs checks, for every tag, that requests by different members never overlap: whenever the member polling a
// tag changes, the new member's first request starts after the previous member's last request ended. A request of
// a member in exempt that started before the member's time there is not checked (the member was killed or paused
// then: what it had in flight does not count). It returns the number of owner changes per tag and the overlaps
// found.
func (ps Polls) Handoffs(exempt map[string]time.Time) (map[string]int, []string) {
	var problems []string
	byTag := map[string][]Poll{}
	for _, p := range ps {
		byTag[p.Tag] = append(byTag[p.Tag], p)
	}
	changes := map[string]int{}
	for tag, recs := range byTag {
		last := map[string]Poll{} // per member: its request that ended last
		cur := ""
		for _, r := range recs {
			if cur != "" && r.Member != cur {
				changes[tag]++
				p := last[cur]
				until, ok := exempt[cur]
				if r.Start.Before(p.End) && !(ok && p.Start.Before(until)) {
					problems = append(problems, fmt.Sprintf("tag %q: %s started a request at %s while %s's request (%s..%s) was still in flight",
						tag, r.Member, r.Start.Format("15:04:05.000"), cur, p.Start.Format("15:04:05.000"), p.End.Format("15:04:05.000")))
				}
			}
			cur = r.Member
			if r.End.After(last[r.Member].End) {
				last[r.Member] = r
			}
		}
	}
	return changes, problems
}
