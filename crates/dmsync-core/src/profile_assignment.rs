//! The Autopilot deployment profile assignment engine's domain: which profile a device is
//! under, and the states its `deploymentProfileAssignmentStatus` moves through.
//!
//! A device is targeted by a profile when one of the profile's assignments targets All Devices,
//! or a group with the device's Entra object as a member, and no exclusion-group assignment of
//! the same profile has it as a member. Of several profiles, the oldest (by creation time, then
//! id) of those that target it through a group wins; a profile assigned to All Devices applies
//! only when no group assignment does (Windows Autopilot's "profile priority"). A newly
//! targeted device shows the profile as intended at once, `pending`, and is assigned after the
//! assignment delay; one targeted through All Devices is assigned at once. Out of scope again,
//! it goes back to `notAssigned`. A test can ask that an assignment fail instead (the
//! `profileAssignmentFailed` fault): the device is then `failed`, with nothing assigned, until
//! its target changes.

use time::OffsetDateTime;

/// `windowsAutopilotProfileAssignmentStatus`, the members the engine writes. The wire enum has
/// more (`unknown`, `assignedOutOfSync`) that nothing in dmsync produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileAssignmentStatus {
    NotAssigned,
    /// The profile is intended but not yet assigned (the portal's "Assigning").
    Pending,
    /// Assigned to a device that has never contacted the service. Graph spells the member
    /// `assignedUnkownSyncState`; that spelling lives in the wire crate.
    AssignedUnknownSyncState,
    /// Assigned to a device that has contacted the service.
    AssignedInSync,
    /// The assignment failed (only ever because a test asked for it): nothing is assigned, and
    /// the device stays so until it is targeted by another profile or by none.
    Failed,
}

impl ProfileAssignmentStatus {
    /// The stored value: Graph's spelling, typo included, so that a `$filter` compares the
    /// column with the client's literal.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileAssignmentStatus::NotAssigned => "notAssigned",
            ProfileAssignmentStatus::Pending => "pending",
            ProfileAssignmentStatus::AssignedUnknownSyncState => "assignedUnkownSyncState",
            ProfileAssignmentStatus::AssignedInSync => "assignedInSync",
            ProfileAssignmentStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ProfileAssignmentStatus> {
        Some(match s {
            "notAssigned" => ProfileAssignmentStatus::NotAssigned,
            "pending" => ProfileAssignmentStatus::Pending,
            "assignedUnkownSyncState" => ProfileAssignmentStatus::AssignedUnknownSyncState,
            "assignedInSync" => ProfileAssignmentStatus::AssignedInSync,
            "failed" => ProfileAssignmentStatus::Failed,
            _ => return None,
        })
    }

    pub fn is_assigned(self) -> bool {
        matches!(self, ProfileAssignmentStatus::AssignedUnknownSyncState | ProfileAssignmentStatus::AssignedInSync)
    }
}

/// Which devices a pass fails instead of assigning them (the `profileAssignmentFailed` fault):
/// of the devices the pass would assign (pending ones coming due, and those assigned at once
/// through All Devices), these end `failed`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ForcedAssignmentFailures {
    /// Every device is assigned as the rules say.
    #[default]
    Nothing,
    /// The devices with these serial numbers, compared exactly as the store compares serials.
    Serials(Vec<String>),
    /// Every device the pass would assign.
    Every,
}

/// What one pass of the engine changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProfileAssignmentStats {
    /// Devices newly under a profile (or under another one), now `pending`.
    pub pending: u64,
    /// Devices assigned by this pass: pending ones whose delay passed, and those targeted
    /// through All Devices.
    pub assigned: u64,
    /// Devices out of scope again, back to `notAssigned`.
    pub unassigned: u64,
    /// Devices the pass would have assigned but failed, as [`ForcedAssignmentFailures`] asked.
    pub failed: u64,
    /// Of [`ForcedAssignmentFailures::Serials`], the serials of the devices the pass failed
    /// (empty for the other kinds, whose count is enough).
    pub failed_serials: Vec<String>,
    /// When the next pass is due, if devices are still pending; the pass enqueued it.
    pub next_pass_at: Option<OffsetDateTime>,
}
