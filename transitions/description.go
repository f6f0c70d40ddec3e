package transitions

import (
	"strings"
	"unicode/utf8"

	"github.com/modelgate/modelgate/rules"
)

// The report section of a version's description lies between these lines. Text outside
// them is the user's and is kept byte for byte.
const (
	FenceBegin = "<!-- modelgate:begin -->"
	FenceEnd   = "<!-- modelgate:end -->"
)

// MaxDescription is the longest description written: MLflow's model_versions.description
// column is VARCHAR(5000), enforced by PostgreSQL and MySQL stores (SQLite ignores it).
const MaxDescription = 5000

// span is a complete report section: from its state line (or, without one, its begin
// fence) to after its end fence's line break. A section that opens the description also
// takes the one line break that separates it from the user's text.
type span struct{ start, end int } // byte offsets

// sections finds the complete sections of a description. An end fence closes the
// nearest begin fence before it; a begin with no end, or an end with no begin, is not a
// fence but text (someone deleted half of one), and stays as it is. The line just before
// a begin fence belongs to the section when it is a state line (rules.IsStateLine).
func sections(desc string) []span {
	var out []span
	open, prevLine := -1, -1
	for off := 0; off < len(desc); {
		lineEnd := strings.IndexByte(desc[off:], '\n')
		next := len(desc)
		if lineEnd >= 0 {
			next = off + lineEnd + 1
		}
		switch strings.TrimSpace(desc[off:next]) {
		case FenceBegin:
			open = off
			if prevLine >= 0 && rules.IsStateLine(desc[prevLine:off]) && (len(out) == 0 || out[len(out)-1].end <= prevLine) {
				open = prevLine
			}
		case FenceEnd:
			if open >= 0 {
				end := next
				if open == 0 && strings.HasPrefix(desc[end:], "\n") {
					end++
				}
				out = append(out, span{open, end})
				open = -1
			}
		}
		prevLine, off = off, next
	}
	return out
}

// userText returns the description without its report sections: the user's text, byte
// for byte.
func userText(desc string) string {
	var b strings.Builder
	prev := 0
	for _, s := range sections(desc) {
		b.WriteString(desc[prev:s.start])
		prev = s.end
	}
	b.WriteString(desc[prev:])
	return b.String()
}

// reportBudget is how many characters the report section may take so that the whole
// description stays within MaxDescription, or 0 when there is no room.
func reportBudget(desc string) int {
	used := utf8.RuneCountInString(userText(desc))
	overhead := utf8.RuneCountInString(FenceBegin+"\n"+FenceEnd+"\n") + 2 // the line breaks after the state line and before the user's text
	return max(MaxDescription-used-overhead, 0)
}

// withReport returns the description with its report section set to report, whose
// first line is the state line: the section opens the description (MLflow's versions
// list shows a description's first line), every earlier section is removed, and the
// user's text follows, byte for byte.
//
// One exception keeps the text as it is: when removing the sections would join the
// user's own stray fences into a complete section of their own (a begin fence above a
// section and an end fence below it), the first section is replaced where it stands.
func withReport(desc, report string) string {
	stateLine, body := "", strings.TrimRight(report, "\n")
	if first, rest, _ := strings.Cut(body, "\n"); rules.IsStateLine(first) {
		stateLine, body = first+"\n", rest
	}
	if body != "" {
		body += "\n"
	}
	section := stateLine + FenceBegin + "\n" + body + FenceEnd + "\n"
	user := userText(desc)
	if len(sections(user)) == 0 {
		if user == "" {
			return section
		}
		return section + "\n" + user
	}
	var b strings.Builder
	prev := 0
	for i, s := range sections(desc) {
		b.WriteString(desc[prev:s.start])
		if i == 0 {
			b.WriteString(section)
			if s.start == 0 && strings.HasSuffix(desc[:s.end], "\n\n") {
				b.WriteString("\n") // the separator the span took
			}
		}
		prev = s.end
	}
	b.WriteString(desc[prev:])
	return b.String()
}

// reportContent returns the content of the first complete report section (its state
// line and what lies between its fences), or "".
func reportContent(desc string) string {
	spans := sections(desc)
	if len(spans) == 0 {
		return ""
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(desc[spans[0].start:spans[0].end], "\n") {
		if t := strings.TrimSpace(line); t != FenceBegin && t != FenceEnd {
			b.WriteString(line)
		}
	}
	return strings.TrimRight(b.String(), "\r\n")
}
