//! The shape of an execution's step tree, built from ids alone, and the
//! depth-first walk that `show` draws it in.
//!
//! - Built from `(id, parent)` pairs in start order, in time linear in the
//!   number of steps; a step's children keep that order.
//! - The top level is every step without a parent or whose parent is not a
//!   step of the execution (it never arrived), as everywhere else.
//! - The walk keeps its own stack, so a chain of any depth is walked
//!   without recursion. Each step has one parent, so the walk visits a
//!   step at most once; steps that only hang off each other in a cycle are
//!   not reachable from the top level and are never visited.
//! - [`StepTree::within`] cuts the walk at a depth and after a number of
//!   steps, and counts what it cut.

use std::collections::HashMap;

use uuid::Uuid;

/// The parent index of a step whose parent is not among the steps.
const NONE: usize = usize::MAX;

/// The steps of an execution as a tree of indices into their start order.
#[derive(Debug, Clone, Default)]
pub struct StepTree {
    /// The steps' ids, in start order.
    ids: Vec<Uuid>,
    /// The children of step `i` are `children[first_child[i]..first_child[i + 1]]`.
    first_child: Vec<usize>,
    /// Every step that has a parent among the steps, grouped by parent,
    /// in start order within a group.
    children: Vec<usize>,
    /// The top-level steps, in start order.
    roots: Vec<usize>,
}

impl StepTree {
    /// The tree of `steps`, given as `(id, parent id)` in start order.
    pub fn new(steps: impl IntoIterator<Item = (Uuid, Option<Uuid>)>) -> StepTree {
        let (ids, parent_ids): (Vec<Uuid>, Vec<Option<Uuid>>) = steps.into_iter().unzip();
        let position: HashMap<Uuid, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let parents: Vec<usize> = parent_ids
            .iter()
            .map(|p| p.and_then(|p| position.get(&p).copied()).unwrap_or(NONE))
            .collect();
        drop(position);
        drop(parent_ids);
        // Children grouped by parent (a counting sort), stable so that
        // each group stays in start order.
        let mut first_child = vec![0usize; ids.len() + 1];
        for &p in parents.iter().filter(|&&p| p != NONE) {
            first_child[p + 1] += 1;
        }
        for i in 1..first_child.len() {
            first_child[i] += first_child[i - 1];
        }
        let mut next = first_child.clone();
        let mut children = vec![0usize; first_child[ids.len()]];
        let mut roots = Vec::new();
        for (i, &p) in parents.iter().enumerate() {
            if p == NONE {
                roots.push(i);
            } else {
                children[next[p]] = i;
                next[p] += 1;
            }
        }
        StepTree {
            ids,
            first_child,
            children,
            roots,
        }
    }

    /// How many steps there are (reachable from the top level or not).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no steps.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id of step `index` (its position in start order).
    pub fn id(&self, index: usize) -> Uuid {
        self.ids[index]
    }

    fn children_of(&self, i: usize) -> &[usize] {
        &self.children[self.first_child[i]..self.first_child[i + 1]]
    }

    /// Every step reachable from the top level, depth first, each before
    /// its children, siblings in start order.
    pub fn walk(&self) -> Walk<'_> {
        Walk {
            tree: self,
            stack: siblings(&self.roots, 1).collect(),
        }
    }

    /// The [walk](StepTree::walk) cut to `cut`.
    pub fn within(&self, cut: TreeCut) -> Within<'_> {
        Within {
            walk: self.walk(),
            cut,
            shown: 0,
            hidden: Hidden::default(),
        }
    }
}

/// `steps` as visits at `depth`, the last sibling first: pushed on the
/// walk's stack in this order, they are popped first sibling first.
fn siblings(steps: &[usize], depth: usize) -> impl Iterator<Item = Visit> + '_ {
    steps.iter().enumerate().rev().map(move |(at, &i)| Visit {
        index: i,
        depth,
        last: at + 1 == steps.len(),
    })
}

/// A step met on a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visit {
    /// Its position in start order.
    pub index: usize,
    /// 1 for the top level, 2 for its children, …
    pub depth: usize,
    /// Whether it is the last of its siblings.
    pub last: bool,
}

/// See [`StepTree::walk`].
#[derive(Debug)]
pub struct Walk<'a> {
    tree: &'a StepTree,
    /// Steps still to visit, the next on top.
    stack: Vec<Visit>,
}

impl Iterator for Walk<'_> {
    type Item = Visit;

    fn next(&mut self) -> Option<Visit> {
        let visit = self.stack.pop()?;
        let children = self.tree.children_of(visit.index);
        self.stack.extend(siblings(children, visit.depth + 1));
        Some(visit)
    }
}

/// How much of a tree to show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeCut {
    /// Only steps down to this depth (1: the top level only).
    pub depth: Option<usize>,
    /// At most this many steps, in walk order.
    pub limit: Option<usize>,
}

impl TreeCut {
    /// Whether nothing is cut.
    pub fn is_none(&self) -> bool {
        self.depth.is_none() && self.limit.is_none()
    }
}

/// The reachable steps a [`TreeCut`] left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hidden {
    /// Deeper than [`TreeCut::depth`].
    pub by_depth: usize,
    /// Within the depth, but after [`TreeCut::limit`] steps.
    pub by_limit: usize,
}

impl Hidden {
    /// All of them.
    pub fn total(&self) -> usize {
        self.by_depth + self.by_limit
    }
}

/// See [`StepTree::within`]: the visits kept; once it has returned `None`,
/// [`Within::hidden`] counts the rest.
#[derive(Debug)]
pub struct Within<'a> {
    walk: Walk<'a>,
    cut: TreeCut,
    shown: usize,
    hidden: Hidden,
}

impl Within<'_> {
    /// What was cut so far (all of it once the walk is over).
    pub fn hidden(&self) -> Hidden {
        self.hidden
    }
}

impl Iterator for Within<'_> {
    type Item = Visit;

    fn next(&mut self) -> Option<Visit> {
        for visit in self.walk.by_ref() {
            if self.cut.depth.is_some_and(|d| visit.depth > d) {
                self.hidden.by_depth += 1;
            } else if self.cut.limit.is_some_and(|l| self.shown >= l) {
                self.hidden.by_limit += 1;
            } else {
                self.shown += 1;
                return Some(visit);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// 1 ─ 2 ─ 4, 1 ─ 3, 5 (lost parent 99), 6 ↔ 7 (a cycle), 8 ─ 8 (its own parent).
    fn forest() -> StepTree {
        StepTree::new([
            (id(1), None),
            (id(2), Some(id(1))),
            (id(3), Some(id(1))),
            (id(4), Some(id(2))),
            (id(5), Some(id(99))),
            (id(6), Some(id(7))),
            (id(7), Some(id(6))),
            (id(8), Some(id(8))),
        ])
    }

    fn walked(visits: impl Iterator<Item = Visit>) -> Vec<(u128, usize, bool)> {
        visits
            .map(|v| (v.index as u128 + 1, v.depth, v.last))
            .collect()
    }

    #[test]
    fn the_walk_is_depth_first_in_start_order_and_skips_cycles() {
        let tree = forest();
        assert_eq!(tree.len(), 8);
        assert_eq!(
            walked(tree.walk()),
            [
                (1, 1, false),
                (2, 2, false),
                (4, 3, true),
                (3, 2, true),
                (5, 1, true)
            ]
        );
    }

    #[test]
    fn a_cut_keeps_the_first_steps_down_to_a_depth_and_counts_the_rest() {
        let tree = forest();
        let mut within = tree.within(TreeCut {
            depth: Some(2),
            limit: Some(2),
        });
        assert_eq!(walked(within.by_ref()), [(1, 1, false), (2, 2, false)]);
        assert_eq!(
            within.hidden(),
            Hidden {
                by_depth: 1,
                by_limit: 2
            }
        );
        let mut whole = tree.within(TreeCut::default());
        assert_eq!(whole.by_ref().count(), 5);
        assert_eq!(whole.hidden().total(), 0);
    }

    #[test]
    fn a_chain_deeper_than_any_stack_is_walked() {
        let n = 200_000u128;
        let tree = StepTree::new((1..=n).map(|i| (id(i), (i > 1).then(|| id(i - 1)))));
        let mut depth = 0;
        for visit in tree.walk() {
            depth += 1;
            assert_eq!((visit.depth, visit.last), (depth, true));
        }
        assert_eq!(depth as u128, n);
    }
}
