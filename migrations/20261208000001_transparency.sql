-- keyward key directory, schema version 7: the key transparency tree (akd's records).
--
-- The key transparency directory is facebook's akd library (crate `akd`, version 0.13): a
-- verifiable map from a label (for keyward an account's JID) to versioned values, with a
-- new root hash per published epoch. akd does not store anything itself: it reads and
-- writes three kinds of records through its `Database` trait, which the crate
-- keyward-transparency implements on these tables. Each record is stored column by
-- column, exactly as akd hands it over, so the tables can be read and checked by hand; the
-- CHECK constraints catch a record akd could never have written.
--
-- akd's integers are unsigned 64-bit; they are stored as bigint and kept to 0..2^63-1 (an
-- epoch or version beyond that is refused when written). A node label is akd's
-- `NodeLabel`: a bit string of `len` bits (0 to 256) held in 32 bytes, `val`.
--
-- A publish writes one epoch in one transaction: every changed tree node and every new
-- value state, then the azks row with the new epoch last, so a reader never sees an epoch
-- whose nodes are missing. Nothing here is ever deleted by akd; a value may be replaced by
-- akd's tombstone (the bytes "~") when its plaintext must go.

-- akd's `Azks` record: the tree's current state. One row (akd's key `DEFAULT_AZKS_KEY`, 1).
CREATE TABLE akd_azks (
    id           smallint PRIMARY KEY,
    -- The last epoch whose publish committed completely (0 before the first publish).
    latest_epoch bigint   NOT NULL,
    -- How many nodes the tree has.
    num_nodes    bigint   NOT NULL,
    CONSTRAINT akd_azks_one_row CHECK (id = 1),
    CONSTRAINT akd_azks_counts CHECK (latest_epoch >= 0 AND num_nodes >= 0)
);

-- akd's `TreeNodeWithPreviousValue` record: one node of the compressed binary tree, keyed
-- by its label, in its latest state and, when it changed since, the state before (so
-- proofs for the previous epoch can still be made while a publish is under way). The
-- labels of leaves are VRF outputs, not JIDs; a node's hash commits to its subtree.
CREATE TABLE akd_tree_nodes (
    label_len                integer  NOT NULL,
    label_val                bytea    NOT NULL,
    -- The latest state (akd's `latest_node`).
    -- The epoch in which the node last changed.
    last_epoch               bigint   NOT NULL,
    -- The smallest `last_epoch` below this node (what the append-only proof walks by).
    min_descendant_epoch     bigint   NOT NULL,
    -- The parent's label; the root is its own parent.
    parent_label_len         integer  NOT NULL,
    parent_label_val         bytea    NOT NULL,
    -- akd's `TreeNodeType`: 1 leaf, 2 root, 3 interior.
    node_type                smallint NOT NULL,
    -- The children's labels (both absent for a leaf, or for the root of an empty tree).
    left_child_len           integer,
    left_child_val           bytea,
    right_child_len          integer,
    right_child_val          bytea,
    -- The node's value: a leaf's commitment hashed with its epoch, or the hash of the children.
    hash                     bytea    NOT NULL,
    -- The previous state (akd's `previous_node`), the same fields, all absent when there is none.
    p_last_epoch             bigint,
    p_min_descendant_epoch   bigint,
    p_parent_label_len       integer,
    p_parent_label_val       bytea,
    p_node_type              smallint,
    p_left_child_len         integer,
    p_left_child_val         bytea,
    p_right_child_len        integer,
    p_right_child_val        bytea,
    p_hash                   bytea,
    PRIMARY KEY (label_len, label_val),
    CONSTRAINT akd_tree_nodes_labels CHECK (
        label_len BETWEEN 0 AND 256 AND octet_length(label_val) = 32
        AND parent_label_len BETWEEN 0 AND 256 AND octet_length(parent_label_val) = 32
        AND left_child_len BETWEEN 0 AND 256 AND octet_length(left_child_val) = 32
        AND right_child_len BETWEEN 0 AND 256 AND octet_length(right_child_val) = 32
        AND p_parent_label_len BETWEEN 0 AND 256 AND octet_length(p_parent_label_val) = 32
        AND p_left_child_len BETWEEN 0 AND 256 AND octet_length(p_left_child_val) = 32
        AND p_right_child_len BETWEEN 0 AND 256 AND octet_length(p_right_child_val) = 32
    ),
    CONSTRAINT akd_tree_nodes_children CHECK (
        num_nulls(left_child_len, left_child_val) IN (0, 2)
        AND num_nulls(right_child_len, right_child_val) IN (0, 2)
        AND num_nulls(p_left_child_len, p_left_child_val) IN (0, 2)
        AND num_nulls(p_right_child_len, p_right_child_val) IN (0, 2)
    ),
    CONSTRAINT akd_tree_nodes_previous_whole CHECK (
        num_nulls(p_last_epoch, p_min_descendant_epoch, p_parent_label_len, p_parent_label_val,
                  p_node_type, p_hash) IN (0, 6)
        AND (p_last_epoch IS NOT NULL OR num_nulls(p_left_child_len, p_right_child_len) = 2)
    ),
    CONSTRAINT akd_tree_nodes_values CHECK (
        last_epoch >= 0 AND min_descendant_epoch >= 0 AND node_type BETWEEN 1 AND 3
        AND octet_length(hash) = 32
        AND p_last_epoch >= 0 AND p_min_descendant_epoch >= 0 AND p_node_type BETWEEN 1 AND 3
        AND octet_length(p_hash) = 32
    )
);

-- akd's `ValueState` record: the value a label took in an epoch, as version `version`.
-- A label's history is its rows by epoch; lookups ask for the newest, the oldest, the one
-- at or before an epoch, or a given version, all through the primary key's
-- (username, epoch) order (a label has few rows).
CREATE TABLE akd_value_states (
    -- The directory's label (akd's `AkdLabel`, here the account's JID as bytes). In the
    -- clear: this table is what the server knows; proofs carry only the VRF label.
    username  bytea  NOT NULL,
    -- The epoch the value was published in.
    epoch     bigint NOT NULL,
    -- 1 for a label's first value, one more for each update.
    version   bigint NOT NULL,
    -- The leaf's label in the tree: the VRF output for (username, version).
    label_len integer NOT NULL,
    label_val bytea  NOT NULL,
    -- The value (akd's `AkdValue`), or akd's tombstone once erased. Its commitment nonce
    -- is not stored: akd derives it from the VRF key, the label, the version and the value.
    value     bytea  NOT NULL,
    PRIMARY KEY (username, epoch),
    CONSTRAINT akd_value_states_numbers CHECK (epoch >= 0 AND version >= 0),
    CONSTRAINT akd_value_states_label CHECK (label_len BETWEEN 0 AND 256 AND octet_length(label_val) = 32)
);
