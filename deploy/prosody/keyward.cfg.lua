-- keyward: attach the keys component to Prosody (0.12, mod_privilege from prosody-modules).
--
-- Put this file where your main config includes it AFTER its own VirtualHost sections,
-- e.g. Debian's /etc/prosody/conf.d/keyward.cfg.lua (prosody.cfg.lua ends with
-- `Include "conf.d/*.cfg.lua"`). Replace example.org with your domain and the secret
-- with the value of KEYWARD_COMPONENT_SECRET. Then `prosodyctl check config` and reload.
--
-- Global options this needs (they belong in the GLOBAL section of prosody.cfg.lua,
-- before the first VirtualHost, not here):
--   component_ports = { 5347 }              -- the default
--   component_interfaces = { "127.0.0.1" }  -- the default (loopback). If the component
--       runs on another machine or in Kubernetes, bind a private address instead; XEP-0114
--       is plain TCP, never expose it to the internet (see deploy/prosody.md).
--   If mod_privilege is not in Prosody's module folder (Debian's prosody-modules puts it
--   there), add its folder to plugin_paths.

-- Re-opening your existing VirtualHost adds settings to it; its other settings stay.
VirtualHost "example.org"
    -- XEP-0356: lets keys.example.org read users' rosters (for roster-keys and for telling
    -- roster contacts about a revocation). Host-level modules_enabled adds to the global list.
    modules_enabled = { "privilege" }
    privileged_entities = {
        ["keys.example.org"] = {
            roster = "both";       -- keyward only reads rosters
            message = "outgoing";
            presence = "roster";
        };
    }

-- The component itself (XEP-0114). mod_privilege must ALSO be enabled here, or roster
-- requests from the component are answered `forbidden`.
Component "keys.example.org"
    component_secret = "REPLACE_ME_same_as_KEYWARD_COMPONENT_SECRET"
    modules_enabled = { "privilege" }
