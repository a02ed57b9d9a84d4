"""Checks on ACLs: the roles an ACL user holds, judged by what pacemaker's CIB manager lets
that user read and write on a copy of the CIB (lab.gather.pacemaker)."""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement, tostring

from checks import Verdict, check, fail, ok
from lab.core.xmlsafe import parse_untrusted
from lab.gather import pacemaker
from lab.gather.facts import Facts


# Hand-written, mirroring pcmk__unpack_acl() (lib/common/acl.c): an acl_group's roles apply
# to every member of the OS group of that name. Group membership lives on the nodes, not on
# the grading host, so the exercise names the user's groups there and the copy the CIB
# manager judges gives the user those roles directly. Everything else (read/write/deny,
# xpath, object-type, reference, attribute) is enforced by pacemaker itself.
def _acl_copy(cib_xml: str, user: str, groups: list[str], only_role: str | None = None) -> str:
    """The CIB with ACLs enabled, the user's group roles (or only `only_role`) held directly."""
    root = parse_untrusted(cib_xml, "CIB")
    config = root.find("configuration")
    assert config is not None
    crm = config.find("crm_config")
    if crm is None:
        crm = SubElement(config, "crm_config")
    boot = next((s for s in crm.findall("cluster_property_set") if s.get("id") == "cib-bootstrap-options"), None)
    if boot is None:
        boot = Element("cluster_property_set", {"id": "cib-bootstrap-options"})
        crm.insert(0, boot)
    for nvset in crm.findall("cluster_property_set"):  # whichever set the CIB manager would read
        for pair in nvset.findall("nvpair"):
            if pair.get("name") == "enable-acl":
                nvset.remove(pair)
    SubElement(boot, "nvpair", {"id": "lab-acl-enable", "name": "enable-acl", "value": "true"})
    acls = config.find("acls")
    if acls is None:
        acls = SubElement(config, "acls")
    mine = [t for t in acls if t.tag in ("acl_target", "acl_user") and (t.get("name") or t.get("id")) == user]
    roles = [r.get("id", "") for t in mine for r in t if r.tag in ("role", "role_ref")]
    for group in acls.findall("acl_group"):
        if (group.get("name") or group.get("id")) in groups:
            roles += [r.get("id", "") for r in group if r.tag in ("role", "role_ref")]
    for element in mine + acls.findall("acl_group"):
        acls.remove(element)
    target = SubElement(acls, "acl_target", {"id": user})
    for role in ([only_role] if only_role else roles):
        SubElement(target, "role", {"id": role})
    return tostring(root, encoding="unicode")


@check("acl_user_role")
def acl_user_role(facts: Facts, user: str, role: str, groups: list[str] | None = None) -> Verdict:
    """ACL user holds role (directly or through a group); the role alone reads the whole CIB;
    with everything the user holds, the CIB manager lets the user read all and write nothing."""
    acls = facts.cib.acls
    groups = groups or []
    if role not in acls.roles:
        return fail(f"no ACL role '{role}'")
    held = list(acls.targets.get(user, ()))
    held += [r for g, rs in acls.groups.items() if g in groups for r in rs]
    if user not in acls.targets and not held:
        return fail(f"no ACL user (acl_target) '{user}'")
    if role not in held:
        return fail(f"ACL user '{user}' does not hold role '{role}' (holds {', '.join(held) or 'none'})")
    alone = _acl_copy(facts.cib_xml, user, groups, only_role=role)
    if pacemaker.read_as(alone, user) != pacemaker.read_as(alone, None):
        return fail(f"role '{role}' does not let '{user}' read the whole CIB")
    full = _acl_copy(facts.cib_xml, user, groups)
    if pacemaker.read_as(full, user) != pacemaker.read_as(full, None):
        return fail(f"with all its roles (a deny among them), '{user}' cannot read the whole CIB")
    writes = pacemaker.writes_as(full, user)
    if writes:
        return fail(f"ACL user '{user}' may write ({', '.join(writes[:3])}): not read-only")
    return ok(f"ACL user '{user}' holds role '{role}': reads the whole CIB, may write nothing")
