package apicompat

import (
	"fmt"
	"go/types"
	"sort"
	"strings"
)

// A Diff is one exported item of the reference package that the candidate
// package lacks or declares differently.
type Diff struct {
	// Item names the identifier, e.g. "FromString", "Bundle.Marshal",
	// "SVID.ID" (struct field) or "Source.GetX509BundleForTrustDomain".
	Item string
	// Problem says what is wrong, with the reference and candidate
	// declarations where both exist.
	Problem string
}

// String formats d as "item: problem".
func (d Diff) String() string { return d.Item + ": " + d.Problem }

// PathMapper rewrites an import path of the reference module into the
// corresponding path of the candidate module. Paths outside the reference
// module are returned unchanged.
type PathMapper func(path string) string

// PrefixMapper returns a PathMapper that replaces the module prefix from with
// to. A path equal to from, or starting with from followed by "/", is
// rewritten; every other path is left alone.
func PrefixMapper(from, to string) PathMapper {
	return func(path string) string {
		if path == from {
			return to
		}
		if rest, ok := strings.CutPrefix(path, from+"/"); ok {
			return to + "/" + rest
		}
		return path
	}
}

// Compare reports every exported identifier of ref that cand lacks or
// declares with a different kind or signature. Types are compared as strings
// in which every package is written as its full import path after mapping,
// so "github.com/spiffe/go-spiffe/v2/spiffeid.ID" in ref equals
// "github.com/spiffekit/spiffekit/spiffeid.ID" in cand when mapPath maps one
// module onto the other.
//
// Checked: package-level funcs, vars, consts (type and value), and type names
// (alias or defined, underlying kind). For struct types, every exported field
// (type and embedding); for interface types, the exported method set, which
// must be equal, because an extra method would break types implementing the
// reference interface, and the type terms of constraints. An interface with
// an unexported method is sealed: only its own package can implement it, so
// the names of its unexported methods are invisible to users and only
// sealing an interface the reference leaves open is reported. Whether a
// method is listed or comes from an embedded interface does not matter. For
// all other defined types, the underlying type.
// For every exported type T, the exported methods in the method sets of T
// and *T, so a method moved from a value to a pointer receiver is reported.
// Extra identifiers in cand are allowed. The result is sorted by item.
func Compare(ref, cand *types.Package, mapPath PathMapper) []Diff {
	c := comparer{
		refQ:  func(p *types.Package) string { return mapPath(p.Path()) },
		candQ: func(p *types.Package) string { return p.Path() },
	}
	refScope, candScope := ref.Scope(), cand.Scope()
	for _, name := range refScope.Names() {
		ro := refScope.Lookup(name)
		if !ro.Exported() {
			continue
		}
		co := candScope.Lookup(name)
		if co == nil {
			c.add(name, "missing (%s)", c.describe(ro, c.refQ))
			continue
		}
		c.object(name, ro, co)
	}
	sort.SliceStable(c.diffs, func(i, j int) bool { return c.diffs[i].Item < c.diffs[j].Item })
	return c.diffs
}

type comparer struct {
	refQ, candQ types.Qualifier
	diffs       []Diff
}

func (c *comparer) add(item, format string, args ...any) {
	c.diffs = append(c.diffs, Diff{Item: item, Problem: fmt.Sprintf(format, args...)})
}

func kindOf(o types.Object) string {
	switch o := o.(type) {
	case *types.Func:
		return "func"
	case *types.Var:
		return "var"
	case *types.Const:
		return "const"
	case *types.TypeName:
		if o.IsAlias() {
			return "type alias"
		}
		return "type"
	default:
		return fmt.Sprintf("%T", o)
	}
}

func (c *comparer) describe(o types.Object, q types.Qualifier) string {
	return types.ObjectString(o, q)
}

func (c *comparer) object(name string, ro, co types.Object) {
	if rk, ck := kindOf(ro), kindOf(co); rk != ck {
		c.add(name, "kind differs: want %s, have %s", rk, ck)
		return
	}
	switch ro := ro.(type) {
	case *types.Func, *types.Var:
		c.sameType(name, ro.Type(), co.Type())
	case *types.Const:
		cc := co.(*types.Const)
		c.sameType(name, ro.Type(), cc.Type())
		if rv, cv := ro.Val().ExactString(), cc.Val().ExactString(); rv != cv {
			c.add(name, "constant value differs: want %s, have %s", rv, cv)
		}
	case *types.TypeName:
		c.typeName(name, ro, co.(*types.TypeName))
	}
}

func (c *comparer) sameType(item string, rt, ct types.Type) {
	rs, cs := typeString(rt, c.refQ), typeString(ct, c.candQ)
	if rs != cs {
		c.add(item, "signature differs:\n\twant %s\n\thave %s", rs, cs)
	}
}

func (c *comparer) typeName(name string, ro, co *types.TypeName) {
	if ro.IsAlias() {
		c.sameType(name, types.Unalias(ro.Type()), types.Unalias(co.Type()))
		return
	}
	rn, rok := ro.Type().(*types.Named)
	cn, cok := co.Type().(*types.Named)
	if !rok || !cok {
		c.sameType(name, ro.Type(), co.Type())
		return
	}
	c.typeParams(name, rn.TypeParams(), cn.TypeParams())
	switch ru := rn.Underlying().(type) {
	case *types.Struct:
		cu, ok := cn.Underlying().(*types.Struct)
		if !ok {
			c.add(name, "underlying kind differs: want struct, have %s", typeString(cn.Underlying(), c.candQ))
			break
		}
		c.structFields(name, ru, cu)
	case *types.Interface:
		cu, ok := cn.Underlying().(*types.Interface)
		if !ok {
			c.add(name, "underlying kind differs: want interface, have %s", typeString(cn.Underlying(), c.candQ))
			return // the reference's methods are the interface's own
		}
		c.interfaceMethods(name, ru, cu)
		return // an interface's method set is its own; no receiver checks
	default:
		c.sameType(name+" (underlying)", ru, cn.Underlying())
	}
	c.methods(name, rn, cn)
}

func (c *comparer) typeParams(name string, r, cp *types.TypeParamList) {
	rs, cs := tparamString(r, c.refQ), tparamString(cp, c.candQ)
	if rs != cs {
		c.add(name, "type parameters differ: want [%s], have [%s]", rs, cs)
	}
}

func tparamString(l *types.TypeParamList, q types.Qualifier) string {
	parts := make([]string, l.Len())
	for i := range l.Len() {
		tp := l.At(i)
		parts[i] = tp.Obj().Name() + " " + typeString(tp.Constraint(), q)
	}
	return strings.Join(parts, ", ")
}

func (c *comparer) structFields(name string, r, cs *types.Struct) {
	have := make(map[string]*types.Var, cs.NumFields())
	for i := range cs.NumFields() {
		have[cs.Field(i).Name()] = cs.Field(i)
	}
	for i := range r.NumFields() {
		rf := r.Field(i)
		if !rf.Exported() {
			continue
		}
		item := name + "." + rf.Name()
		cf, ok := have[rf.Name()]
		if !ok {
			c.add(item, "missing struct field (%s %s)", rf.Name(), typeString(rf.Type(), c.refQ))
			continue
		}
		if rf.Embedded() != cf.Embedded() {
			c.add(item, "embedding differs: want embedded=%t, have embedded=%t", rf.Embedded(), cf.Embedded())
		}
		c.sameType(item, rf.Type(), cf.Type())
	}
}

func (c *comparer) interfaceMethods(name string, r, ci *types.Interface) {
	have := make(map[string]*types.Func, ci.NumMethods())
	for i := range ci.NumMethods() {
		have[ci.Method(i).Name()] = ci.Method(i)
	}
	if rs, cs := sealed(r), sealed(ci); !rs && cs {
		c.add(name, "interface is sealed (has an unexported method): types implementing the reference interface would not implement this one")
	}
	want := make(map[string]bool, r.NumMethods())
	for i := range r.NumMethods() {
		rm := r.Method(i)
		if !rm.Exported() {
			continue // see sealed
		}
		want[rm.Name()] = true
		item := name + "." + rm.Name()
		cm, ok := have[rm.Name()]
		if !ok {
			c.add(item, "missing interface method %s", typeString(rm.Type(), c.refQ))
			continue
		}
		c.sameType(item, rm.Type(), cm.Type())
	}
	for i := range ci.NumMethods() {
		if m := ci.Method(i); m.Exported() && !want[m.Name()] {
			c.add(name+"."+m.Name(), "extra interface method (types implementing the reference interface would not implement this one)")
		}
	}
	if rt, ct := typeSetTerms(r, c.refQ), typeSetTerms(ci, c.candQ); rt != ct {
		c.add(name, "interface type set differs: want %q, have %q", rt, ct)
	}
}

// typeString is types.TypeString without parameter and result names, which
// callers never see: func(n int) and func(count int) are the same signature.
func typeString(t types.Type, q types.Qualifier) string {
	switch t := t.(type) {
	case *types.Signature:
		return "func" + signatureString(t, q)
	case *types.Pointer:
		return "*" + typeString(t.Elem(), q)
	case *types.Slice:
		return "[]" + typeString(t.Elem(), q)
	case *types.Array:
		return fmt.Sprintf("[%d]%s", t.Len(), typeString(t.Elem(), q))
	case *types.Map:
		return "map[" + typeString(t.Key(), q) + "]" + typeString(t.Elem(), q)
	case *types.Chan:
		prefix := "chan "
		switch t.Dir() {
		case types.SendOnly:
			prefix = "chan<- "
		case types.RecvOnly:
			prefix = "<-chan "
		}
		return prefix + typeString(t.Elem(), q)
	default:
		return types.TypeString(t, q)
	}
}

func signatureString(sig *types.Signature, q types.Qualifier) string {
	var b strings.Builder
	if tp := sig.TypeParams(); tp.Len() > 0 {
		b.WriteString("[" + tparamString(tp, q) + "]")
	}
	b.WriteString("(")
	params := sig.Params()
	for i := range params.Len() {
		if i > 0 {
			b.WriteString(", ")
		}
		pt := params.At(i).Type()
		if s, ok := pt.(*types.Slice); ok && sig.Variadic() && i == params.Len()-1 {
			b.WriteString("..." + typeString(s.Elem(), q))
			continue
		}
		b.WriteString(typeString(pt, q))
	}
	b.WriteString(")")
	results := sig.Results()
	switch results.Len() {
	case 0:
	case 1:
		b.WriteString(" " + typeString(results.At(0).Type(), q))
	default:
		b.WriteString(" (")
		for i := range results.Len() {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(typeString(results.At(i).Type(), q))
		}
		b.WriteString(")")
	}
	return b.String()
}

// sealed reports whether i has an unexported method, which only types of
// its own package can implement.
func sealed(i *types.Interface) bool {
	for j := range i.NumMethods() {
		if !i.Method(j).Exported() {
			return true
		}
	}
	return false
}

// typeSetTerms renders the non-method part of a constraint interface: its
// embedded elements other than plain method-set interfaces, whose methods
// are compared with the listed ones.
func typeSetTerms(i *types.Interface, q types.Qualifier) string {
	var parts []string
	for j := range i.NumEmbeddeds() {
		e := i.EmbeddedType(j)
		if ei, ok := e.Underlying().(*types.Interface); ok && ei.IsMethodSet() {
			continue
		}
		parts = append(parts, typeString(e, q))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func (c *comparer) methods(name string, rn, cn *types.Named) {
	for _, ptr := range []bool{false, true} {
		var rt, ct types.Type = rn, cn
		recv := name
		if ptr {
			rt, ct = types.NewPointer(rn), types.NewPointer(cn)
			recv = "*" + name
		}
		rms, cms := types.NewMethodSet(rt), types.NewMethodSet(ct)
		for i := range rms.Len() {
			rm := rms.At(i).Obj()
			if !rm.Exported() {
				continue
			}
			if ptr && types.NewMethodSet(rn).Lookup(rm.Pkg(), rm.Name()) != nil {
				continue // already checked on the value receiver
			}
			item := name + "." + rm.Name()
			sel := cms.Lookup(cn.Obj().Pkg(), rm.Name())
			if sel == nil {
				if types.NewMethodSet(types.NewPointer(cn)).Lookup(cn.Obj().Pkg(), rm.Name()) != nil {
					c.add(item, "method is in the method set of %s but only on a pointer receiver here", recv)
				} else {
					c.add(item, "missing method %s", typeString(rm.Type(), c.refQ))
				}
				continue
			}
			c.sameType(item, rm.Type(), sel.Obj().Type())
		}
	}
}
