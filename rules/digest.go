package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// digest hashes canonical lines into the "sha256:<16 hex>" form modelgate writes to
// tags: short enough to read in the UI, long enough never to collide for one version.
func digest(lines []string) string {
	h := sha256.New()
	var buf []byte
	for _, l := range lines {
		// Length-prefixed, so no two different lists hash the same bytes.
		buf = strconv.AppendInt(buf[:0], int64(len(l)), 10)
		buf = append(buf, ':')
		buf = append(buf, l...)
		buf = append(buf, '\n')
		h.Write(buf)
	}
	var sum [sha256.Size]byte
	return "sha256:" + hex.EncodeToString(h.Sum(sum[:0])[:8])
}

// evidenceDigest covers exactly the evidence the checks read (the values in the report),
// in check order; inputs within a check are already sorted. The same evidence gives the
// same digest whatever the order of maps; metrics or tags no check reads do not change it.
func evidenceDigest(checks []CheckResult) string {
	var lines []string
	for _, c := range checks {
		lines = append(lines, "check:"+c.Name)
		lines = append(lines, c.inputs...)
	}
	return digest(lines)
}

// computeDigests fills the gate digests (everything that affects a gate's decisions and
// its review) and the policy digest (gates and notifications).
func (p *Policy) computeDigests() {
	var all []string
	for _, g := range p.Gates {
		g.digest = digest(g.canonical())
		all = append(all, "gate:"+g.Name+"="+g.digest)
	}
	for _, n := range p.Notifications {
		all = append(all, fmt.Sprintf("notify:%s:%s:%v", n.URLEnv, n.Format, n.Events))
	}
	p.digest = digest(all)
}

func (g *Gate) canonical() []string {
	lines := []string{
		"name:" + g.Name,
		"models:" + strings.Join(g.Models, "\x00"),
		"on_missing:" + string(g.OnMissing),
		fmt.Sprintf("review:%s:%s:%d:%s", g.Review.Required, strings.Join(g.Review.Approvers, "\x00"), g.Review.MinApprovals, g.Review.ExpiresAfter),
		fmt.Sprintf("promote:%s:%t", g.Promote.Target(), g.Promote.ArchiveExisting),
	}
	// Fields added later extend the digest only when set, so a gate that does not use them
	// keeps the digest it had (and the votes cast under it).
	if len(g.Review.Overriders) > 0 {
		lines = append(lines, "overriders:"+strings.Join(g.Review.Overriders, "\x00"))
	}
	if g.Promote.Protect {
		lines = append(lines, "protect")
	}
	if g.Review.RecertifyAfter > 0 {
		lines = append(lines, "recertify_after:"+g.Review.RecertifyAfter.String())
	}
	if g.Review.Identity == IdentityVerified {
		lines = append(lines, fmt.Sprintf("identity:verified:%t", g.Review.ForbidSelfApproval))
	}
	for _, st := range g.Promote.Rollout {
		lines = append(lines, "rollout:"+st.Alias+":"+st.Soak.String())
		for _, c := range st.Checks {
			lines = append(lines, "rollout-check:"+st.Alias+":"+strings.Join(checkLine(c), "|"))
		}
	}
	for _, c := range g.Checks {
		lines = append(lines, checkLine(c)...)
	}
	return lines
}

// checkLine is a check's canonical form, for the gate digest.
func checkLine(c Check) []string {
	pattern := ""
	if c.GroupPattern != nil {
		pattern = c.GroupPattern.String()
	}
	lines := []string{fmt.Sprintf("check:%s|%s|%s|%s|%s|%s|%s|%s|%s|%d|%s|%t|%s|%s|%s|%s|%s|%s",
		c.Name, c.Kind, c.OnFail, strings.Join(c.Metrics, "\x00"), optNum(c.Min), optNum(c.Max),
		pattern, optNum(c.MaxGap), optNum(c.MinRatio), c.MinGroups,
		c.Baseline, c.GreaterIsBetter, optNum(c.Threshold), optNum(c.MinAbsoluteChange), optNum(c.MinRelativeChange),
		c.Tag, c.Equals, c.Expr)}
	if c.OnMissing != "" {
		lines = append(lines, "check-on-missing:"+c.Name+"="+string(c.OnMissing))
	}
	if c.Kind == KindLineage {
		lines = append(lines, fmt.Sprintf("check-lineage:%s=%t,%d", c.Name, c.GitCommit, c.Datasets))
	}
	return lines
}

func optNum(f *float64) string {
	if f == nil {
		return "-"
	}
	return canon(*f)
}

// Number is a float64 that encodes NaN and infinities as JSON strings ("NaN", "+Inf",
// "-Inf"), which encoding/json cannot write as numbers.
type Number float64

// MarshalJSON writes a number, or a string for NaN and infinities.
func (n Number) MarshalJSON() ([]byte, error) {
	v := float64(n)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return json.Marshal(fmtNum(v))
	}
	return json.Marshal(v)
}
