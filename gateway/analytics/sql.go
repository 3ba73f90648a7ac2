package analytics

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dolthub/vitess/go/vt/sqlparser"
)

// Errors of Parse. Callers (the admin endpoint) branch on them to answer
// 400 instead of 500.
var (
	// ErrSyntax is returned for SQL the parser rejects; the message keeps
	// the parser's position.
	ErrSyntax = errors.New("analytics: SQL syntax error")
	// ErrUnsupported is returned for valid SQL that continuous queries do not
	// support; the message quotes the unsupported part.
	ErrUnsupported = errors.New("analytics: unsupported SQL")
	// ErrInvalid is returned for SQL that is supported in shape but wrong,
	// e.g. a selected column that is neither grouped nor aggregated.
	ErrInvalid = errors.New("analytics: invalid query")
)

// WindowKind is the kind of window a query groups by.
type WindowKind uint8

// Window kinds, named as in the GROUP BY clause.
const (
	// Tumbling windows: TUMBLING(INTERVAL '1' MINUTE), fixed and disjoint.
	Tumbling WindowKind = iota + 1
	// Hopping (sliding) windows: HOPPING(INTERVAL size, INTERVAL slide), or
	// SLIDING(...): fixed size, a new one every slide; a record is in
	// size/slide windows.
	Hopping
	// Session windows: SESSION(INTERVAL gap): per group, records closer than
	// gap to each other share a window.
	Session
)

func (k WindowKind) String() string {
	switch k {
	case Tumbling:
		return "tumbling"
	case Hopping:
		return "hopping"
	case Session:
		return "session"
	}
	return "none"
}

// Window is a query's window, durations in milliseconds.
type Window struct {
	Kind        WindowKind
	Size, Slide int64 // tumbling and hopping (tumbling: Slide == Size)
	Gap         int64 // session
}

// column is one output column.
type column struct {
	name string
	e    expr
}

// Plan is a compiled continuous query. It is immutable and safe to share.
type Plan struct {
	SQL    string
	Source string // the stream in FROM
	Window Window
	// Columns are the output column names in SELECT order.
	Columns []string

	where   expr // nil: every record
	keys    []expr
	keyText []string
	aggs    []aggSpec
	cols    []column
	having  expr // nil: every group
}

// unsupported builds an ErrUnsupported error quoting node.
func unsupported(what string, node sqlparser.SQLNode, hint string) error {
	msg := fmt.Sprintf("%v: %s", ErrUnsupported, what)
	if node != nil {
		msg += fmt.Sprintf(" at `%s`", strings.TrimSpace(sqlparser.String(node)))
	}
	if hint != "" {
		msg += ": " + hint
	}
	return &planError{msg: msg, base: ErrUnsupported}
}

func invalid(format string, args ...any) error {
	return &planError{msg: fmt.Sprintf("%v: %s", ErrInvalid, fmt.Sprintf(format, args...)), base: ErrInvalid}
}

type planError struct {
	msg  string
	base error
}

func (e *planError) Error() string { return e.msg }
func (e *planError) Unwrap() error { return e.base }

// Parse compiles one SELECT statement into a Plan. Supported: projection of
// JSON fields (nested paths as a.b.c, `a.b.c` or a->'$.b.c'), WHERE, GROUP BY
// keys plus exactly one window (TUMBLING, HOPPING/SLIDING, SESSION),
// COUNT(*), COUNT, SUM, AVG, MIN, MAX, APPROX_COUNT_DISTINCT,
// APPROX_PERCENTILE(x, q), HAVING (which may use SELECT aliases),
// WINDOW_START() and WINDOW_END(). Anything else returns ErrUnsupported
// naming the part.
func Parse(sql string) (*Plan, error) {
	sql = strings.TrimSpace(sql)
	if sql == "" {
		return nil, invalid("the SQL is empty")
	}
	if len(sql) > 16<<10 {
		return nil, invalid("the SQL is longer than 16 KiB")
	}
	st, err := safeParse(sql)
	if err != nil {
		return nil, &planError{msg: fmt.Sprintf("%v: %v", ErrSyntax, err), base: ErrSyntax}
	}
	sel, ok := st.(*sqlparser.Select)
	if !ok {
		return nil, unsupported("only a single SELECT is a continuous query", st, "")
	}
	p := &Plan{SQL: sql}
	if err := p.compile(sel); err != nil {
		return nil, err
	}
	return p, nil
}

// safeParse calls the parser library, turning a panic inside it (fuzzing
// found some, e.g. SELECT followed by an empty quoted string) into an
// error: bad SQL must never crash the gateway.
func safeParse(sql string) (st sqlparser.Statement, err error) {
	defer func() {
		if p := recover(); p != nil {
			st, err = nil, fmt.Errorf("the parser failed on this SQL (%v)", p)
		}
	}()
	return sqlparser.Parse(sql)
}

type compiler struct {
	p       *Plan
	table   string // FROM name
	alias   string
	aggText map[string]int
	aliases map[string]expr
}

func (p *Plan) compile(sel *sqlparser.Select) error {
	switch {
	case sel.With != nil:
		return unsupported("WITH", sel.With, "")
	case sel.QueryOpts.Distinct:
		return unsupported("SELECT DISTINCT", nil, "group by the columns instead")
	case len(sel.OrderBy) > 0:
		return unsupported("ORDER BY", sel.OrderBy, "results are emitted as windows close")
	case sel.Limit != nil:
		return unsupported("LIMIT", sel.Limit, "")
	case len(sel.Window) > 0:
		return unsupported("WINDOW clause", sel.Window, "put TUMBLING, HOPPING or SESSION in GROUP BY")
	case sel.Into != nil:
		return unsupported("INTO", sel.Into, "the output stream is set in the query's config")
	case sel.Lock != "":
		return unsupported("locking clause", nil, "")
	}
	c := &compiler{p: p, aggText: map[string]int{}, aliases: map[string]expr{}}
	if len(sel.From) != 1 {
		return unsupported("FROM with several tables", sel.From, "a query reads one stream")
	}
	ate, ok := sel.From[0].(*sqlparser.AliasedTableExpr)
	if !ok {
		return unsupported("FROM", sel.From[0], "name one stream")
	}
	tn, ok := ate.Expr.(sqlparser.TableName)
	if !ok || !tn.DbQualifier.IsEmpty() || !tn.SchemaQualifier.IsEmpty() {
		return unsupported("FROM", ate, "name one stream, without a database")
	}
	c.table = tn.Name.String()
	c.alias = ate.As.String()
	p.Source = c.table
	if ate.AsOf != nil {
		return unsupported("AS OF", ate, "")
	}

	if sel.Where != nil && sel.Where.Expr != nil {
		w, err := c.recordExpr(sel.Where.Expr)
		if err != nil {
			return err
		}
		p.where = w
	}
	for _, g := range sel.GroupBy {
		if fn, ok := g.(*sqlparser.FuncExpr); ok && isWindowFunc(fn.Name.Lowered()) {
			if p.Window.Kind != 0 {
				return unsupported("a second window", g, "GROUP BY takes exactly one of TUMBLING, HOPPING, SESSION")
			}
			w, err := windowOf(fn)
			if err != nil {
				return err
			}
			p.Window = w
			continue
		}
		k, err := c.recordExpr(g)
		if err != nil {
			return err
		}
		p.keys = append(p.keys, k)
		p.keyText = append(p.keyText, sqlparser.String(g))
	}
	if p.Window.Kind == 0 {
		return unsupported("a query without a window", sel.GroupBy,
			"add TUMBLING(INTERVAL '1' MINUTE), HOPPING(INTERVAL '1' MINUTE, INTERVAL '10' SECOND) or SESSION(INTERVAL '30' SECOND) to GROUP BY")
	}

	seen := map[string]bool{}
	for _, se := range sel.SelectExprs {
		ae, ok := se.(*sqlparser.AliasedExpr)
		if !ok {
			return unsupported("SELECT *", se, "name the grouped columns and aggregates")
		}
		e, err := c.groupExpr(ae.Expr)
		if err != nil {
			return err
		}
		if _, isWin := e.(winRef); isWin && ae.As.IsEmpty() {
			continue // window_start and window_end are in every output record
		}
		name := ae.As.String()
		if name == "" {
			name = defaultName(ae.Expr)
		}
		switch name {
		case "query", "window_start", "window_end":
			if _, isWin := e.(winRef); !isWin {
				return invalid("column name %q is reserved for the output record; use AS to rename `%s`", name, sqlparser.String(ae.Expr))
			}
			continue // already in every output record
		}
		if seen[name] {
			return invalid("two columns are named %q; use AS to rename one", name)
		}
		seen[name] = true
		p.cols = append(p.cols, column{name: name, e: e})
		p.Columns = append(p.Columns, name)
		c.aliases[name] = e
	}
	if sel.Having != nil && sel.Having.Expr != nil {
		h, err := c.groupExpr(sel.Having.Expr)
		if err != nil {
			return err
		}
		p.having = h
	}
	return nil
}

func defaultName(e sqlparser.Expr) string {
	if cn, ok := e.(*sqlparser.ColName); ok {
		return cn.Name.String()
	}
	return sqlparser.String(e)
}

func isWindowFunc(name string) bool {
	switch name {
	case "tumbling", "hopping", "sliding", "session":
		return true
	}
	return false
}

func windowOf(fn *sqlparser.FuncExpr) (Window, error) {
	name := fn.Name.Lowered()
	var ds []int64
	for _, a := range fn.Exprs {
		ae, ok := a.(*sqlparser.AliasedExpr)
		if !ok {
			return Window{}, unsupported("window argument", a, "want INTERVAL 'n' UNIT")
		}
		d, err := intervalMillis(ae.Expr)
		if err != nil {
			return Window{}, err
		}
		ds = append(ds, d)
	}
	switch name {
	case "tumbling":
		if len(ds) != 1 {
			return Window{}, invalid("TUMBLING takes one interval, the size: `%s`", sqlparser.String(fn))
		}
		return Window{Kind: Tumbling, Size: ds[0], Slide: ds[0]}, nil
	case "hopping", "sliding":
		if len(ds) != 2 {
			return Window{}, invalid("%s takes two intervals, size and slide: `%s`", strings.ToUpper(name), sqlparser.String(fn))
		}
		if ds[1] > ds[0] {
			return Window{}, invalid("the slide must not exceed the size: `%s`", sqlparser.String(fn))
		}
		if ds[0]/ds[1] > 1000 {
			return Window{}, invalid("size/slide is above 1000 windows per record: `%s`", sqlparser.String(fn))
		}
		return Window{Kind: Hopping, Size: ds[0], Slide: ds[1]}, nil
	default:
		if len(ds) != 1 {
			return Window{}, invalid("SESSION takes one interval, the gap: `%s`", sqlparser.String(fn))
		}
		return Window{Kind: Session, Gap: ds[0]}, nil
	}
}

var unitMillis = map[string]int64{
	"millisecond": 1, "second": 1000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000,
}

// intervalMillis reads INTERVAL 'n' UNIT (or INTERVAL n UNIT).
func intervalMillis(e sqlparser.Expr) (int64, error) {
	iv, ok := e.(*sqlparser.IntervalExpr)
	if !ok {
		return 0, unsupported("window argument", e, "want INTERVAL 'n' UNIT")
	}
	unit := strings.ToLower(iv.Unit)
	ms, ok := unitMillis[strings.TrimSuffix(unit, "s")]
	if !ok {
		return 0, unsupported("interval unit "+iv.Unit, iv, "want MILLISECOND, SECOND, MINUTE, HOUR or DAY")
	}
	v, ok := iv.Expr.(*sqlparser.SQLVal)
	if !ok {
		return 0, unsupported("interval value", iv, "want a number")
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(string(v.Val)), 64)
	if err != nil || n <= 0 || n*float64(ms) > float64(365*24*time.Hour/time.Millisecond) {
		return 0, invalid("interval `%s`: want a positive number up to a year", sqlparser.String(iv))
	}
	d := int64(n * float64(ms))
	if d < 1 {
		return 0, invalid("interval `%s` is shorter than a millisecond", sqlparser.String(iv))
	}
	return d, nil
}

// path turns a column name into a JSON path, dropping a leading FROM name
// or alias; backquoted names with dots are split.
func (c *compiler) path(cn *sqlparser.ColName) []string {
	var parts []string
	for _, s := range []string{cn.Qualifier.SchemaQualifier.String(), cn.Qualifier.DbQualifier.String(), cn.Qualifier.Name.String()} {
		if s != "" {
			parts = append(parts, strings.Split(s, ".")...)
		}
	}
	parts = append(parts, strings.Split(cn.Name.String(), ".")...)
	if len(parts) > 1 && (parts[0] == c.table || (c.alias != "" && parts[0] == c.alias)) {
		parts = parts[1:]
	}
	return parts
}

// recordExpr compiles an expression over one record (no aggregates).
func (c *compiler) recordExpr(e sqlparser.Expr) (expr, error) {
	return c.expr(e, false)
}

// groupExpr compiles an expression over a closed window's group: grouped
// keys, aggregates, window bounds and SELECT aliases.
func (c *compiler) groupExpr(e sqlparser.Expr) (expr, error) {
	return c.expr(e, true)
}

func (c *compiler) expr(e sqlparser.Expr, group bool) (expr, error) {
	if group {
		text := sqlparser.String(e)
		for i, k := range c.p.keyText {
			if k == text {
				return keyRef(i), nil
			}
		}
	}
	switch n := e.(type) {
	case *sqlparser.ColName:
		if group {
			if n.Qualifier.IsEmpty() {
				if a, ok := c.aliases[n.Name.String()]; ok {
					return a, nil
				}
			}
			return nil, invalid("`%s` must be in GROUP BY or inside an aggregate", sqlparser.String(n))
		}
		return field{path: c.path(n)}, nil
	case *sqlparser.SQLVal:
		switch n.Type {
		case sqlparser.StrVal:
			return lit{strV(string(n.Val))}, nil
		case sqlparser.IntVal, sqlparser.FloatVal:
			f, err := strconv.ParseFloat(string(n.Val), 64)
			if err != nil {
				return nil, invalid("number `%s`: %v", n.Val, err)
			}
			return lit{numV(f)}, nil
		}
		return nil, unsupported("literal", n, "want a string or a number")
	case sqlparser.BoolVal:
		return lit{boolV(bool(n))}, nil
	case *sqlparser.NullVal:
		return lit{nullV}, nil
	case *sqlparser.ParenExpr:
		return c.expr(n.Expr, group)
	case *sqlparser.AndExpr:
		l, r, err := c.pair(n.Left, n.Right, group)
		if err != nil {
			return nil, err
		}
		return andExpr{l, r}, nil
	case *sqlparser.OrExpr:
		l, r, err := c.pair(n.Left, n.Right, group)
		if err != nil {
			return nil, err
		}
		return orExpr{l, r}, nil
	case *sqlparser.NotExpr:
		x, err := c.expr(n.Expr, group)
		if err != nil {
			return nil, err
		}
		return notExpr{x}, nil
	case *sqlparser.IsExpr:
		x, err := c.expr(n.Expr, group)
		if err != nil {
			return nil, err
		}
		switch n.Operator {
		case sqlparser.IsNullStr:
			return isNullExpr{e: x}, nil
		case sqlparser.IsNotNullStr:
			return isNullExpr{e: x, not: true}, nil
		case sqlparser.IsTrueStr:
			return isBoolExpr{e: x, want: true}, nil
		case sqlparser.IsNotTrueStr:
			return isBoolExpr{e: x, want: true, not: true}, nil
		case sqlparser.IsFalseStr:
			return isBoolExpr{e: x}, nil
		case sqlparser.IsNotFalseStr:
			return isBoolExpr{e: x, not: true}, nil
		}
		return nil, unsupported("IS operator", n, "")
	case *sqlparser.RangeCond:
		x, err := c.expr(n.Left, group)
		if err != nil {
			return nil, err
		}
		lo, hi, err := c.pair(n.From, n.To, group)
		if err != nil {
			return nil, err
		}
		return betweenExpr{e: x, lo: lo, hi: hi, not: n.Operator == sqlparser.NotBetweenStr}, nil
	case *sqlparser.ComparisonExpr:
		return c.comparison(n, group)
	case *sqlparser.BinaryExpr:
		if n.Operator == sqlparser.JSONExtractOp || n.Operator == sqlparser.JSONUnquoteExtractOp {
			return c.jsonPath(n, n.Left, n.Right, group)
		}
		ops := map[string]byte{sqlparser.PlusStr: '+', sqlparser.MinusStr: '-', sqlparser.MultStr: '*', sqlparser.DivStr: '/', sqlparser.ModStr: '%'}
		op, ok := ops[n.Operator]
		if !ok {
			return nil, unsupported("operator "+n.Operator, n, "")
		}
		l, r, err := c.pair(n.Left, n.Right, group)
		if err != nil {
			return nil, err
		}
		return arithExpr{op: op, l: l, r: r}, nil
	case *sqlparser.UnaryExpr:
		x, err := c.expr(n.Expr, group)
		if err != nil {
			return nil, err
		}
		switch n.Operator {
		case sqlparser.UMinusStr:
			return negExpr{x}, nil
		case sqlparser.UPlusStr:
			return x, nil
		case sqlparser.BangStr:
			return notExpr{x}, nil
		}
		return nil, unsupported("operator "+strings.TrimSpace(n.Operator), n, "")
	case *sqlparser.FuncExpr:
		return c.function(n, group)
	}
	return nil, unsupported("expression", e, "")
}

func (c *compiler) pair(a, b sqlparser.Expr, group bool) (expr, expr, error) {
	l, err := c.expr(a, group)
	if err != nil {
		return nil, nil, err
	}
	r, err := c.expr(b, group)
	if err != nil {
		return nil, nil, err
	}
	return l, r, nil
}

func (c *compiler) comparison(n *sqlparser.ComparisonExpr, group bool) (expr, error) {
	if n.Escape != nil {
		return nil, unsupported("LIKE ... ESCAPE", n, "use a backslash")
	}
	switch n.Operator {
	case sqlparser.JSONExtractOp, sqlparser.JSONUnquoteExtractOp:
		return c.jsonPath(n, n.Left, n.Right, group)
	case sqlparser.InStr, sqlparser.NotInStr:
		x, err := c.expr(n.Left, group)
		if err != nil {
			return nil, err
		}
		tup, ok := n.Right.(sqlparser.ValTuple)
		if !ok {
			return nil, unsupported("IN", n, "want a list of values")
		}
		in := inExpr{e: x, not: n.Operator == sqlparser.NotInStr}
		for _, it := range tup {
			y, err := c.expr(it, group)
			if err != nil {
				return nil, err
			}
			in.list = append(in.list, y)
		}
		return in, nil
	case sqlparser.LikeStr, sqlparser.NotLikeStr:
		x, err := c.expr(n.Left, group)
		if err != nil {
			return nil, err
		}
		v, ok := n.Right.(*sqlparser.SQLVal)
		if !ok || v.Type != sqlparser.StrVal {
			return nil, unsupported("LIKE", n, "want a string pattern")
		}
		re, err := likeRegexp(string(v.Val))
		if err != nil {
			return nil, invalid("LIKE pattern `%s`: %v", v.Val, err)
		}
		return likeExpr{e: x, re: re, not: n.Operator == sqlparser.NotLikeStr}, nil
	}
	ops := map[string]cmpOp{
		sqlparser.EqualStr: opEq, sqlparser.NotEqualStr: opNe, "<>": opNe, sqlparser.LessThanStr: opLt,
		sqlparser.LessEqualStr: opLe, sqlparser.GreaterThanStr: opGt, sqlparser.GreaterEqualStr: opGe,
		sqlparser.NullSafeEqualStr: opNullSafeEq,
	}
	op, ok := ops[n.Operator]
	if !ok {
		return nil, unsupported("operator "+n.Operator, n, "")
	}
	l, r, err := c.pair(n.Left, n.Right, group)
	if err != nil {
		return nil, err
	}
	return cmpExpr{op: op, l: l, r: r}, nil
}

// jsonPath compiles field->'$.a.b' (and ->>) into a nested field path.
func (c *compiler) jsonPath(n sqlparser.Expr, left, right sqlparser.Expr, group bool) (expr, error) {
	cn, ok := left.(*sqlparser.ColName)
	v, ok2 := right.(*sqlparser.SQLVal)
	if group || !ok || !ok2 || v.Type != sqlparser.StrVal {
		return nil, unsupported("JSON operator", n, "want field->'$.a.b' on a record field")
	}
	ps := string(v.Val)
	if !strings.HasPrefix(ps, "$") || strings.ContainsAny(ps, "[]*\"") {
		return nil, unsupported("JSON path "+ps, n, "want '$.a.b'")
	}
	path := c.path(cn)
	for _, s := range strings.Split(strings.TrimPrefix(ps, "$"), ".") {
		if s != "" {
			path = append(path, s)
		}
	}
	return field{path: path}, nil
}

func (c *compiler) function(n *sqlparser.FuncExpr, group bool) (expr, error) {
	name := n.Name.Lowered()
	if n.Over != nil {
		return nil, unsupported("OVER", n, "put the window in GROUP BY")
	}
	if !n.Qualifier.IsEmpty() {
		return nil, unsupported("qualified function", n, "")
	}
	if isWindowFunc(name) {
		return nil, unsupported("window function outside GROUP BY", n, "")
	}
	if name == "window_start" || name == "window_end" {
		if !group {
			return nil, invalid("`%s` is only known once a window closes: use it in SELECT or HAVING", sqlparser.String(n))
		}
		if len(n.Exprs) != 0 {
			return nil, invalid("`%s` takes no arguments", sqlparser.String(n))
		}
		return winRef{end: name == "window_end"}, nil
	}
	kind, isAgg := aggNames[name]
	if isAgg {
		if !group {
			return nil, invalid("aggregate `%s` is not allowed in WHERE or GROUP BY", sqlparser.String(n))
		}
		return c.aggregate(n, name, kind)
	}
	ar, ok := scalarArity[name]
	if !ok {
		return nil, unsupported("function "+strings.ToUpper(name), n,
			"known: COUNT, SUM, AVG, MIN, MAX, APPROX_COUNT_DISTINCT, APPROX_PERCENTILE, WINDOW_START, WINDOW_END, LOWER, UPPER, COALESCE, CONCAT, ABS, ROUND, FLOOR, CEIL")
	}
	if n.Distinct {
		return nil, unsupported("DISTINCT", n, "")
	}
	if len(n.Exprs) < ar[0] || len(n.Exprs) > ar[1] {
		return nil, invalid("`%s`: wrong number of arguments", sqlparser.String(n))
	}
	fn := scalarFn{name: name}
	for _, a := range n.Exprs {
		ae, ok := a.(*sqlparser.AliasedExpr)
		if !ok {
			return nil, unsupported("argument", a, "")
		}
		x, err := c.expr(ae.Expr, group)
		if err != nil {
			return nil, err
		}
		fn.args = append(fn.args, x)
	}
	return fn, nil
}

func (c *compiler) aggregate(n *sqlparser.FuncExpr, name string, kind aggKind) (expr, error) {
	text := sqlparser.String(n)
	if i, ok := c.aggText[strings.ToLower(text)]; ok {
		return aggRef(i), nil
	}
	if n.Distinct {
		return nil, unsupported("DISTINCT in an aggregate", n, "use APPROX_COUNT_DISTINCT(x)")
	}
	spec := aggSpec{kind: kind, text: text}
	args := n.Exprs
	if kind == aggCount && len(args) == 1 {
		if _, star := args[0].(*sqlparser.StarExpr); star {
			spec.kind = aggCountStar
			args = nil
		}
	}
	want := 1
	if kind == aggPercentile {
		want = 2
	}
	if spec.kind != aggCountStar {
		if len(args) != want {
			return nil, invalid("`%s` takes %d argument(s)", text, want)
		}
		ae, ok := args[0].(*sqlparser.AliasedExpr)
		if !ok {
			return nil, unsupported("aggregate argument", args[0], "")
		}
		x, err := c.recordExpr(ae.Expr)
		if err != nil {
			return nil, err
		}
		spec.arg = x
	}
	if kind == aggPercentile {
		ae, ok := args[1].(*sqlparser.AliasedExpr)
		var q float64
		var err error
		if v, isVal := ae.Expr.(*sqlparser.SQLVal); ok && isVal && (v.Type == sqlparser.FloatVal || v.Type == sqlparser.IntVal) {
			q, err = strconv.ParseFloat(string(v.Val), 64)
		} else {
			err = errors.New("not a number")
		}
		if err != nil || q < 0 || q > 1 {
			return nil, invalid("`%s`: the quantile must be a number from 0 to 1", text)
		}
		spec.q = q
	}
	c.p.aggs = append(c.p.aggs, spec)
	c.aggText[strings.ToLower(text)] = len(c.p.aggs) - 1
	return aggRef(len(c.p.aggs) - 1), nil
}
