//! The inode table: numbers for every name the kernel knows, and where each lives.
//!
//! Lock order: `Vfs::inodes` is taken before `Vfs::handles`, and neither is ever held
//! across an `.await`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::attr::FileKind;
use crate::error::{Error, ErrorKind, Result};
use crate::layout::FIRST_DYNAMIC_INO;
use crate::open_file::OpenFile;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// The root and the views: fixed, read-only folders.
    Virtual,
    /// The top folder of provider root `n`.
    Root(usize),
    /// Something inside provider root `n`.
    Under(usize),
    /// An item of the Trash view from root `n`, or something inside one.
    Trash(usize),
}

#[derive(Debug)]
pub(crate) struct Node {
    pub parent: u64,
    pub name: String,
    pub kind: FileKind,
    pub place: Place,
    /// Kernel references (lookups minus forgets).
    pub lookups: u64,
    /// Open handles; the node lives while any is open even if forgotten or unlinked.
    pub handles: u32,
    pub open: Option<Arc<OpenFile>>,
    /// Removed from the namespace while still open.
    pub unlinked: bool,
    /// The trash item id, on the top node of a Trash item.
    pub item: Option<String>,
}

/// Where an inode lives: enough to call the store without holding the table lock.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub place: Place,
    pub kind: FileKind,
    /// Provider-relative path ("" for a provider root); empty for virtual nodes. In
    /// the Trash: the path below the item, until `Vfs::locate` resolves it.
    pub path: String,
    /// The trash item a Trash node belongs to.
    pub item: Option<String>,
    pub unlinked: bool,
    pub open: Option<Arc<OpenFile>>,
}

impl Located {
    pub fn in_trash(&self) -> bool {
        matches!(self.place, Place::Trash(_))
    }

    pub fn root(&self) -> Option<usize> {
        match self.place {
            Place::Root(r) | Place::Under(r) | Place::Trash(r) => Some(r),
            Place::Virtual => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Inodes {
    nodes: HashMap<u64, Node>,
    by_name: HashMap<(u64, String), u64>,
    next: u64,
}

impl Inodes {
    pub fn new() -> Self {
        Self { nodes: HashMap::new(), by_name: HashMap::new(), next: FIRST_DYNAMIC_INO }
    }

    /// Adds a node that is never forgotten (root, views, provider roots).
    pub fn add_fixed(&mut self, ino: u64, parent: u64, name: &str, place: Place) {
        let node = Node {
            parent,
            name: name.to_owned(),
            kind: FileKind::Dir,
            place,
            lookups: u64::MAX / 2,
            handles: 0,
            open: None,
            unlinked: false,
            item: None,
        };
        self.nodes.insert(ino, node);
        if ino != parent {
            self.by_name.insert((parent, name.to_owned()), ino);
        }
    }

    pub fn alloc(&mut self) -> u64 {
        let ino = self.next;
        self.next += 1;
        ino
    }

    pub fn get(&self, ino: u64) -> Result<&Node> {
        self.nodes.get(&ino).ok_or_else(|| Error::new(ErrorKind::NotFound, format!("inode {ino} is not known")))
    }

    pub fn get_mut(&mut self, ino: u64) -> Result<&mut Node> {
        self.nodes.get_mut(&ino).ok_or_else(|| Error::new(ErrorKind::NotFound, format!("inode {ino} is not known")))
    }

    pub fn child(&self, parent: u64, name: &str) -> Option<u64> {
        self.by_name.get(&(parent, name.to_owned())).copied()
    }

    pub fn children_of(&self, parent: u64) -> Vec<(String, u64)> {
        let mut v: Vec<_> =
            self.by_name.iter().filter(|((p, _), _)| *p == parent).map(|((_, n), i)| (n.clone(), *i)).collect();
        v.sort();
        v
    }

    /// The inode for `name` in `parent`, created if new. `count` adds a kernel reference.
    pub fn get_or_insert(&mut self, parent: u64, name: &str, kind: FileKind, count: bool) -> Result<u64> {
        let place = match self.get(parent)?.place {
            Place::Root(r) | Place::Under(r) => Place::Under(r),
            Place::Trash(r) => Place::Trash(r),
            Place::Virtual => return Err(Error::new(ErrorKind::NotFound, "no such entry in a view")),
        };
        let ino = match self.child(parent, name) {
            Some(ino) => ino,
            None => {
                let ino = self.alloc();
                let node = Node {
                    parent,
                    name: name.to_owned(),
                    kind,
                    place,
                    lookups: 0,
                    handles: 0,
                    open: None,
                    unlinked: false,
                    item: None,
                };
                self.nodes.insert(ino, node);
                self.by_name.insert((parent, name.to_owned()), ino);
                ino
            }
        };
        let node = self.get_mut(ino)?;
        node.kind = kind;
        if count {
            node.lookups += 1;
        }
        Ok(ino)
    }

    /// The Trash view's node for item `id` of root `root`, shown as `name`; a node
    /// that showed another item under that name is let go.
    pub fn trash_item(&mut self, parent: u64, name: &str, root: usize, id: &str, kind: FileKind, count: bool) -> u64 {
        let existing = self.child(parent, name).filter(|ino| {
            self.nodes.get(ino).is_some_and(|n| n.place == Place::Trash(root) && n.item.as_deref() == Some(id))
        });
        let ino = match existing {
            Some(ino) => ino,
            None => {
                self.detach(parent, name);
                let ino = self.alloc();
                let node = Node {
                    parent,
                    name: name.to_owned(),
                    kind,
                    place: Place::Trash(root),
                    lookups: 0,
                    handles: 0,
                    open: None,
                    unlinked: false,
                    item: Some(id.to_owned()),
                };
                self.nodes.insert(ino, node);
                self.by_name.insert((parent, name.to_owned()), ino);
                ino
            }
        };
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.kind = kind;
            if count {
                node.lookups += 1;
            }
        }
        ino
    }

    pub fn locate(&self, ino: u64) -> Result<Located> {
        let node = self.get(ino)?;
        let mut path = String::new();
        let mut item = None;
        match node.place {
            Place::Under(_) if !node.unlinked => path = self.path_of(ino)?,
            Place::Trash(_) if !node.unlinked => {
                let (id, rel) = self.trash_path_of(ino)?;
                (item, path) = (Some(id), rel);
            }
            _ => {}
        }
        Ok(Located { place: node.place, kind: node.kind, path, unlinked: node.unlinked, open: node.open.clone(), item })
    }

    /// The trash item a Trash node is in, and the node's path below it.
    fn trash_path_of(&self, ino: u64) -> Result<(String, String)> {
        let mut parts = Vec::new();
        let mut cur = ino;
        loop {
            let node = self.get(cur)?;
            if let Some(id) = &node.item {
                parts.reverse();
                return Ok((id.clone(), parts.join("/")));
            }
            if node.place == Place::Virtual || parts.len() > 4096 {
                return Err(Error::new(ErrorKind::Io, "trash node outside any item"));
            }
            parts.push(node.name.as_str());
            cur = node.parent;
        }
    }

    /// Provider-relative path of a node under a provider root.
    fn path_of(&self, ino: u64) -> Result<String> {
        let mut parts = Vec::new();
        let mut cur = ino;
        loop {
            let node = self.get(cur)?;
            match node.place {
                Place::Root(_) => break,
                Place::Under(_) => {
                    parts.push(node.name.as_str());
                    cur = node.parent;
                }
                Place::Virtual | Place::Trash(_) => {
                    return Err(Error::new(ErrorKind::Io, "inode chain leaves its provider"));
                }
            }
            if parts.len() > 4096 {
                return Err(Error::new(ErrorKind::Io, "inode chain too deep"));
            }
        }
        parts.reverse();
        Ok(parts.join("/"))
    }

    /// Takes a name out of the namespace; an open node stays reachable by number.
    pub fn detach(&mut self, parent: u64, name: &str) {
        if let Some(ino) = self.by_name.remove(&(parent, name.to_owned()))
            && let Some(node) = self.nodes.get_mut(&ino)
        {
            node.unlinked = true;
            if node.lookups == 0 && node.handles == 0 {
                self.nodes.remove(&ino);
            }
        }
    }

    /// Moves a name; whatever had the new name is detached first.
    pub fn rename(&mut self, parent: u64, name: &str, newparent: u64, newname: &str) {
        self.detach(newparent, newname);
        if let Some(ino) = self.by_name.remove(&(parent, name.to_owned())) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.parent = newparent;
                node.name = newname.to_owned();
            }
            self.by_name.insert((newparent, newname.to_owned()), ino);
        }
    }

    /// `rename` out of the Trash: the node (which the kernel keeps using under its new
    /// name) and everything below it become ordinary nodes of its provider.
    pub fn rename_out_of_trash(&mut self, parent: u64, name: &str, newparent: u64, newname: &str) {
        let Some(moved) = self.child(parent, name) else { return };
        self.rename(parent, name, newparent, newname);
        let Some(Place::Trash(root)) = self.nodes.get(&moved).map(|n| n.place) else { return };
        let inside: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.place == Place::Trash(root))
            .map(|(ino, _)| *ino)
            .filter(|ino| self.leads_to(*ino, moved))
            .collect();
        for ino in inside {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.place = Place::Under(root);
                node.item = None;
            }
        }
    }

    /// Whether `ino` is `target` or below it (within the Trash).
    fn leads_to(&self, ino: u64, target: u64) -> bool {
        let mut cur = ino;
        for _ in 0..4096 {
            if cur == target {
                return true;
            }
            match self.nodes.get(&cur) {
                Some(n) if n.item.is_none() && matches!(n.place, Place::Trash(_)) => cur = n.parent,
                _ => return false,
            }
        }
        false
    }

    pub fn forget(&mut self, ino: u64, n: u64) {
        let Some(node) = self.nodes.get_mut(&ino) else { return };
        if !matches!(node.place, Place::Under(_) | Place::Trash(_)) {
            return;
        }
        node.lookups = node.lookups.saturating_sub(n);
        self.drop_if_unused(ino);
    }

    /// Removes a node nobody references any more.
    pub fn drop_if_unused(&mut self, ino: u64) {
        let Some(node) = self.nodes.get(&ino) else { return };
        if node.lookups > 0 || node.handles > 0 || !matches!(node.place, Place::Under(_) | Place::Trash(_)) {
            return;
        }
        let key = (node.parent, node.name.clone());
        if !node.unlinked && self.by_name.get(&key) == Some(&ino) {
            self.by_name.remove(&key);
        }
        self.nodes.remove(&ino);
    }
}
