package rules

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxSummary is the longest modelgate.summary written. MLflow stores version tag values
// as text, but 5,000 characters is where the UI's tags table stays readable and what
// older stores accept.
const MaxSummary = 5000

// Report is a decision as a reviewer sees it: the checks, the status modelgate wrote,
// the review so far, and notes on what modelgate did (promotions, rollbacks).
type Report struct {
	Decision
	Status    string    `json:"status"` // the modelgate.status value
	DecidedAt time.Time `json:"decided_at"`
	Review    *Tally    `json:"review,omitempty"`
	Notes     []string  `json:"notes,omitempty"`

	approvers    []string
	overriders   []string
	minApprovals int
	verified     bool // review.identity: verified
}

// Report wraps a decision of this gate with its status and review, for rendering.
func (g *Gate) Report(d Decision, status string, decidedAt time.Time, review *Tally, notes ...string) Report {
	return Report{Decision: d, Status: status, DecidedAt: decidedAt.UTC(), Review: review, Notes: notes,
		approvers: g.Review.Approvers, overriders: g.Review.Overriders, minApprovals: g.Review.MinApprovals,
		verified: g.Review.Identity == IdentityVerified}
}

// who is a voter's name as the report shows it, marked when modelgate-auth verified it.
func who(v Vote) string {
	if v.Verified {
		return md(v.Name) + " (✔ verified)"
	}
	return md(v.Name)
}

// JSON renders the report as indented JSON.
func (r Report) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// Summary is the one line for the modelgate.summary tag: notes first, then each check
// ("accuracy 0.93 < 0.95 (review); parity ok"). A line longer than MaxSummary is cut at
// an item boundary and says how many items it left out.
func (r Report) Summary() string {
	items := append([]string{}, r.Notes...)
	if r.Review != nil && r.Review.Rejection != nil {
		items = append(items, fmt.Sprintf("rejected by %s: %s", r.Review.Rejection.Name, clipText(r.Review.Rejection.Comment, 500)))
	}
	for _, c := range r.Checks {
		item := c.Message
		if c.Result != Pass {
			item += " (" + string(c.Action) + ")"
		}
		items = append(items, item)
	}
	if len(items) == 0 {
		items = append(items, r.Reason)
	}
	return joinWithin(items, "; ", MaxSummary)
}

// joinWithin joins items with sep, stopping before max runes with "… (+N more)".
func joinWithin(items []string, sep string, max int) string {
	var b strings.Builder
	for i, it := range items {
		more := fmt.Sprintf(" … (+%d more)", len(items)-i)
		next := it
		if i > 0 {
			next = sep + it
		}
		if utf8.RuneCountInString(b.String()+next) > max-utf8.RuneCountInString(more) && i < len(items)-1 ||
			utf8.RuneCountInString(b.String()+next) > max {
			if i == 0 { // a single item longer than the limit
				return clipText(it, max)
			}
			return b.String() + more
		}
		b.WriteString(next)
	}
	return b.String()
}

// Markdown renders the report section of the version's description (without the fence
// lines), within max characters. Its first line is the StateLine; then a headline, the
// check table, the votes and what each approver can do next. When the full table does
// not fit, the passing rows go first, then the table; the state line, the headline and
// the voting instructions always stay.
func (r Report) Markdown(max int) string {
	for _, detail := range []int{fullTable, failedRows, noTable} {
		if s := r.markdown(detail); utf8.RuneCountInString(s) <= max {
			return s
		}
	}
	return clipText(r.markdown(noTable), max)
}

const (
	fullTable = iota
	failedRows
	noTable
)

// A status in words: the symbol the state line and the headline start with, the
// headline's words, and the state line's.
type statusWords struct{ symbol, title, short string }

// Symbols are single code points of the Basic Multilingual Plane without a variation
// selector: the UI's versions list counts characters, and a symbol must count as one.
var statusText = map[string]statusWords{
	"approved":            {"✅", "Approved", "approved"},
	"pending_review":      {"⏳", "Waiting for review", "review"},
	"rejected":            {"❌", "Rejected", "rejected"},
	"promoted":            {"✅", "Promoted", "promoted"},
	"expired":             {"⌛", "Review expired", "review expired"},
	"rolled_back":         {"⏪", "Rolled back", "rolled back"},
	"superseded":          {"⏹", "Superseded", "superseded"},
	"staged":              {"⏩", "Staged", "staged"},
	"recertification_due": {"⏰", "Recertification due", "recertify"},
	"not_gated":           {"➖", "Not gated", "not gated"},
}

func wordsFor(status string) statusWords {
	if w, ok := statusText[status]; ok {
		return w
	}
	return statusWords{"➖", status, status}
}

// StateLineMax is how many characters of a description's first line MLflow's versions
// list shows: truncateToFirstLineWithMaxLength(description, 32) keeps 29 and adds "...".
const StateLineMax = 29

// IsStateLine reports whether a line is a state line modelgate writes: a status symbol
// and a space. The report section's parser uses it to take the line into the section.
func IsStateLine(line string) bool {
	for _, w := range statusText {
		if strings.HasPrefix(line, w.symbol+" ") {
			return true
		}
	}
	return false
}

// StateLine is the first line of the description: the gate state in words, within
// StateLineMax characters, so that the model's versions list shows it ("⏳ review:
// accuracy-target +1", "✅ promoted: champion", "❌ rejected by bob").
func (r Report) StateLine() string {
	w := wordsFor(r.Status)
	var detail string
	switch r.Status {
	case "pending_review":
		detail = r.failedChecks(Review)
		if detail == "" {
			detail = "required"
		}
	case "rejected":
		detail = r.failedChecks(Reject)
		if t := r.Review; t != nil && t.Rejection != nil {
			return clipLine(fmt.Sprintf("%s rejected by %s", w.symbol, oneLine(t.Rejection.Name)))
		}
		if detail == "" {
			detail = r.failedChecks(Review)
		}
	case "promoted", "staged", "recertification_due":
		_, detail, _ = strings.Cut(r.PromoteTo, ":")
	}
	if detail == "" {
		return clipLine(w.symbol + " " + w.short)
	}
	return clipLine(fmt.Sprintf("%s %s: %s", w.symbol, w.short, oneLine(detail)))
}

// failedChecks names the first check that failed with this action (or was missing
// evidence leading to it), and how many more there are: "accuracy-target +1".
func (r Report) failedChecks(action Action) string {
	var names []string
	for _, c := range r.Checks {
		if c.Result != Pass && c.Action == action {
			names = append(names, c.Name)
		}
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return fmt.Sprintf("%s +%d", names[0], len(names)-1)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// clipLine cuts a state line to StateLineMax characters.
func clipLine(s string) string {
	if utf8.RuneCountInString(s) <= StateLineMax {
		return s
	}
	return string([]rune(s)[:StateLineMax-1]) + "…"
}

func (r Report) markdown(detail int) string {
	var b strings.Builder
	w := wordsFor(r.Status)
	b.WriteString(r.StateLine() + "\n")
	if r.Gate == "" {
		fmt.Fprintf(&b, "### %s %s\n\n%s\n", w.symbol, w.title, md(r.Reason))
		return b.String()
	}
	fmt.Fprintf(&b, "### %s %s%s\n", w.symbol, w.title, r.headlineDetail())
	failing := 0
	for _, c := range r.Checks {
		if c.Result != Pass && c.Action != "" {
			failing++
		}
	}
	if failing == 0 {
		fmt.Fprintf(&b, "\n%s.\n", md(upperFirst(r.Reason)))
	}
	for _, n := range r.Notes {
		if strings.HasPrefix(n, "approved by ") && r.Review != nil && len(r.Review.Approvals) > 0 {
			continue // the votes below name every approver, with their comments
		}
		fmt.Fprintf(&b, "\n%s\n", md(n))
	}
	if detail == noTable || len(r.Checks) == 0 {
		// No room for the table: what decided it, one line per check that did not pass.
		if failing > 0 {
			b.WriteString("\n")
		}
		for _, c := range r.Checks {
			if c.Result != Pass && c.Action != "" {
				fmt.Fprintf(&b, "- **%s** (%s → %s): %s\n", md(c.Name), c.Result, c.Action, md(strings.TrimPrefix(c.Message, c.Name+": ")))
			}
		}
	} else {
		// MLflow's UI draws tables without borders or padding: the result comes first
		// (what a reviewer scans for), every cell but the last ends with spaces that
		// Markdown keeps, so that neighbouring cells do not run together, and a check that
		// did not pass says why in full where a passing one shows what was observed.
		b.WriteString("\n| Result" + pad + " | Check" + pad + " | Observed" + pad + " | Bound |\n| --- | --- | --- | --- |\n")
		hidden := 0
		for _, c := range r.Checks {
			if detail == failedRows && c.Result == Pass {
				hidden++
				continue
			}
			observed := c.Observed
			if c.Result != Pass {
				// Why it did not pass, with what was observed when the reason does not say.
				why := strings.TrimPrefix(c.Message, c.Name+": ")
				switch {
				case c.Observed == "" || strings.Contains(why, c.Observed):
					observed = why
				default:
					observed = c.Observed + " — " + why
				}
			}
			fmt.Fprintf(&b, "| %s%s | %s%s | %s%s | %s |\n", resultCell(c), pad, cell(c.Name), pad, cell(observed), pad, cell(c.Bound))
		}
		if hidden > 0 {
			fmt.Fprintf(&b, "\n%d passing check(s) left out for length; %s shows them all.\n", hidden, code("modelgate evaluate "+r.Model+" "+r.Version))
		}
		b.WriteString("\n---\n") // MLflow puts no space under a table: a rule separates what follows
	}
	r.writeReview(&b)
	fmt.Fprintf(&b, "\n<sub>gate %s · decided %s · evidence\\_digest %s · policy\\_digest %s</sub>\n",
		md(r.Gate), r.DecidedAt.Format("2006-01-02 15:04 UTC"), r.EvidenceDigest, r.PolicyDigest)
	return b.String()
}

// pad is the space a table cell ends with: entities, because Markdown trims spaces.
const pad = "&nbsp;&nbsp;&nbsp;"

// headlineDetail is what follows the status in the headline: the target of a
// promotion, the number of checks that asked for a person.
func (r Report) headlineDetail() string {
	switch r.Status {
	case "promoted", "staged", "recertification_due":
		if _, target, ok := strings.Cut(r.PromoteTo, ":"); ok {
			return ": " + md(target)
		}
	case "pending_review", "rejected":
		n := 0
		for _, c := range r.Checks {
			if c.Result != Pass && c.Action != "" {
				n++
			}
		}
		if n == 1 {
			return ": 1 check did not pass"
		}
		if n > 1 {
			return fmt.Sprintf(": %d checks did not pass", n)
		}
	}
	return ""
}

func resultCell(c CheckResult) string {
	switch c.Result {
	case Pass:
		return "✅ pass"
	case Fail:
		return fmt.Sprintf("❌ **fail → %s**", c.Action)
	}
	return fmt.Sprintf("⚠ **missing → %s**", c.Action)
}

// maxListedApprovers bounds the per-approver lines of a pending report.
const maxListedApprovers = 10

func (r Report) writeReview(b *strings.Builder) {
	t := r.Review
	if t != nil && t.Override != nil {
		fmt.Fprintf(b, "\n**Overridden by %s:** %s\n", who(*t.Override), md(clipText(t.Override.Comment, 500)))
	}
	if t != nil && r.Status != "pending_review" {
		if len(t.Approvals) > 0 {
			b.WriteString("\n**Approved by**")
			for i, v := range t.Approvals {
				sep := ","
				if i == 0 {
					sep = ""
				}
				fmt.Fprintf(b, "%s %s", sep, who(v))
				if v.Comment != "" {
					fmt.Fprintf(b, " (“%s”)", md(clipText(v.Comment, 200)))
				}
			}
			b.WriteString(".\n")
		}
		if t.Rejection != nil {
			fmt.Fprintf(b, "\n**Rejected by %s:** %s\n", who(*t.Rejection), md(cmpOr(clipText(t.Rejection.Comment, 500), "(no reason given)")))
		}
	}
	switch r.Status {
	case "pending_review":
		r.writeVoting(b)
	case "rejected", "expired":
		b.WriteString("\nTo evaluate again after fixing the evidence, add the tag " + code("modelgate.reevaluate") + " (any value).\n")
		r.writeOverride(b)
	case "promoted":
		b.WriteString("\nTo roll back, add the tag " + code("modelgate.rollback") + " with the reason as value.\n")
	}
	if t != nil && len(t.Ignored) > 0 {
		b.WriteString("\nIgnored vote tags:")
		for i, iv := range t.Ignored {
			sep := ";"
			if i == len(t.Ignored)-1 {
				sep = "."
			}
			fmt.Fprintf(b, " %s (%s)%s", code(iv.Key), md(iv.Reason), sep)
		}
		b.WriteString("\n")
	}
}

// writeVoting says where the review stands and what each approver can do next, by name,
// and that the page must be reloaded to show the answer (MLflow does not refresh it). It
// is compact: the Tags table, where the reviewer votes, comes after the description.
func (r Report) writeVoting(b *strings.Builder) {
	t := r.Review
	approved := map[string]bool{}
	var done []string
	if t != nil {
		for _, v := range t.Approvals {
			approved[strings.ToLower(v.Name)] = true
			s := "**" + who(v) + "** approved"
			if v.Comment != "" {
				s += " (“" + md(clipText(v.Comment, 200)) + "”)"
			}
			done = append(done, s)
		}
	}
	fmt.Fprintf(b, "\n**Review: %d of %d approval(s)**", len(approved), r.minApprovals)
	if t != nil && !t.ExpiresAt.IsZero() {
		fmt.Fprintf(b, " (expires %s)", t.ExpiresAt.Format("2006-01-02 15:04 UTC"))
	}
	for _, d := range done {
		b.WriteString(" · " + d)
	}
	b.WriteString("\n\n")
	var next []string
	for _, name := range r.approvers {
		if approved[strings.ToLower(name)] {
			continue
		}
		if len(next) == maxListedApprovers {
			next = append(next, "or any other approver with their own name")
			break
		}
		next = append(next, "**"+md(name)+"** "+code(ApprovePrefix+name))
	}
	if len(next) > 0 {
		fmt.Fprintf(b, "To approve, add a tag under **Tags** below: %s (value: an optional comment). To reject, %s = the reason.",
			strings.Join(next, " · "), code(RejectPrefix+"<your name>"))
	}
	if len(r.overriders) > 0 {
		fmt.Fprintf(b, " Overriders (%s) may promote it despite the checks: %s = the reason.",
			md(strings.Join(r.overriders, ", ")), code(OverridePrefix+"<your name>"))
	}
	if r.verified {
		b.WriteString(" Votes are verified: add yours while signed in to MLflow as yourself; MLflow refuses a vote in another name.")
	}
	b.WriteString(" Then **reload this page**: MLflow does not refresh it.\n")
}

// writeOverride names who may promote a decided version despite the checks, and how.
func (r Report) writeOverride(b *strings.Builder) {
	if len(r.overriders) == 0 {
		return
	}
	fmt.Fprintf(b, "\nOverriders (%s) may promote it despite the checks: %s = the reason.\n",
		md(strings.Join(r.overriders, ", ")), code(OverridePrefix+"<your name>"))
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// md escapes text for Markdown and for the HTML sanitiser MLflow's UI runs over it.
func md(s string) string {
	return mdEscaper.Replace(s)
}

var mdEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`,
	"<", "&lt;", ">", "&gt;", "|", `\|`, "#", `\#`, "\r", " ", "\n", " ",
)

// code renders text as a code span: shown literally, so nothing inside is escaped;
// backticks and line breaks, which would end or break the span, are dropped.
func code(s string) string {
	return "`" + strings.NewReplacer("`", "", "\n", " ", "\r", " ", "|", "\\|").Replace(s) + "`"
}

// cell escapes a table cell; the observed value may hold user text (tag values).
func cell(s string) string {
	if s == "" {
		return "–"
	}
	return md(s)
}

// Text renders the report for a terminal: the outcome, why, and an aligned table.
func (r Report) Text() string {
	var b strings.Builder
	if r.Gate == "" {
		fmt.Fprintf(&b, "%s version %s: %s\n  %s\n", r.Model, r.Version, r.Outcome, r.Reason)
		return b.String()
	}
	fmt.Fprintf(&b, "%s version %s: %s (gate %s)\n", r.Model, r.Version, r.Outcome, r.Gate)
	fmt.Fprintf(&b, "  %s\n", r.Reason)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  %s\n", n)
	}
	if len(r.Checks) > 0 {
		b.WriteString("\n")
		rows := [][]string{{"CHECK", "KIND", "OBSERVED", "BOUND", "RESULT"}}
		for _, c := range r.Checks {
			res := string(c.Result)
			if c.Result != Pass {
				res += " → " + string(c.Action)
			}
			rows = append(rows, []string{c.Name, string(c.Kind), clipText(c.Observed, 60), c.Bound, res})
		}
		writeColumns(&b, rows)
	}
	if t := r.Review; t != nil {
		fmt.Fprintf(&b, "\nreview: %s, %d of %d approval(s)", t.Outcome, len(t.Approvals), t.Needed)
		if t.Rejection != nil {
			fmt.Fprintf(&b, "; rejected by %s: %s", t.Rejection.Name, t.Rejection.Comment)
		}
		for _, iv := range t.Ignored {
			fmt.Fprintf(&b, "\n  ignored %s: %s", iv.Key, iv.Reason)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nevidence_digest %s, policy_digest %s (gate %s)\n", r.EvidenceDigest, r.PolicyDigest, r.Gate)
	return b.String()
}

// writeColumns aligns rows on rune width (tabwriter counts bytes, which misaligns ≥).
func writeColumns(b *strings.Builder, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range rows {
		b.WriteString("  ")
		for i, c := range row {
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		b.WriteString("\n")
	}
}

// Restate rewrites a report section's content (as Markdown renders it) for a new status:
// a new state line and headline, and the note under it; the rest, the checks as they
// were decided, stays as it was. For a version whose state changes without a new
// judgement (superseded, given its target back, restored after tampering). Sections
// written before the state line existed ("#### modelgate: …" headlines) are restated
// the same way.
func Restate(section, status, note string) string {
	w := wordsFor(status)
	// The note is a quote: MLflow shows it as a plain paragraph, and a later restatement
	// knows it for the note it replaces.
	head := fmt.Sprintf("%s\n### %s %s\n\n> %s\n", clipLine(w.symbol+" "+w.short), w.symbol, w.title, md(note))
	rest := section
	if first, after, ok := strings.Cut(rest, "\n"); ok && IsStateLine(first) {
		rest = after
	}
	switch {
	case strings.HasPrefix(rest, "### "):
		rest = afterLine(rest)
		if strings.HasPrefix(rest, "> ") { // an earlier restatement's note
			rest = afterParagraph(rest)
		}
	case strings.HasPrefix(rest, "#### modelgate: "): // written before the state line existed
		rest = afterLine(rest)
		if !strings.HasPrefix(rest, "Gate ") { // an earlier restatement's note
			rest = afterParagraph(rest)
		}
	}
	// What the reviewer could do next (vote, roll back, evaluate again) was for the old
	// status: it goes; the checks above the rule and the footer below it stay.
	if i := strings.Index(rest, "\n---\n"); i >= 0 {
		if j := strings.LastIndex(rest, "\n<sub>"); j > i {
			rest = rest[:i+len("\n---\n")] + rest[j:]
		}
	}
	return head + "\n" + rest
}

// afterLine is s without its first line and the blank lines after it.
func afterLine(s string) string {
	if i := strings.Index(s, "\n"); i >= 0 {
		return strings.TrimLeft(s[i+1:], "\n")
	}
	return ""
}

// afterParagraph is s without its first paragraph and the blank lines after it.
func afterParagraph(s string) string {
	if i := strings.Index(s, "\n\n"); i >= 0 {
		return strings.TrimLeft(s[i+2:], "\n")
	}
	return ""
}

func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return strings.ToUpper(string(r)) + s[n:]
}
