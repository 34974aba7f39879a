use std::fmt;
use std::hash::Hash;

/// The type of a field, which decides the operators that apply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    Bool,
    /// Integers, Unix-second times and durations in seconds.
    Int,
    Str,
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldType::Bool => "bool",
            FieldType::Int => "int",
            FieldType::Str => "string",
        })
    }
}

/// The fields a filter may name for one kind of subject.
pub trait Field: Copy + Eq + Hash + fmt::Debug + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
    fn field_type(self) -> FieldType;

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|f| f.name() == name)
    }
}

macro_rules! fields {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal : $ty:ident,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
        }

        impl Field for $name {
            const ALL: &'static [Self] = &[$($name::$variant,)*];

            fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            fn field_type(self) -> FieldType {
                match self {
                    $($name::$variant => FieldType::$ty,)*
                }
            }
        }
    };
}

fields!(
    /// Job fields. Times are Unix seconds; `duration`, `time_since_start` and
    /// `time_since_end` are seconds, the last two measured to the query's `now`.
    JobField {
        JobId = "job_id": Str,
        Username = "username": Str,
        UserId = "user_id": Str,
        DeviceId = "device_id": Str,
        ProtectedItemId = "protected_item_id": Str,
        VaultId = "vault_id": Str,
        ScheduleId = "schedule_id": Str,
        ClientVersion = "client_version": Str,
        Status = "status": Int,
        Classification = "classification": Int,
        UploadBytes = "upload_bytes": Int,
        DownloadBytes = "download_bytes": Int,
        TotalBytes = "total_bytes": Int,
        TotalFiles = "total_files": Int,
        TotalDirs = "total_dirs": Int,
        StartTime = "start_time": Int,
        EndTime = "end_time": Int,
        Duration = "duration": Int,
        TimeSinceStart = "time_since_start": Int,
        TimeSinceEnd = "time_since_end": Int,
        Running = "running": Bool,
    }
);

fields!(
    /// Device fields, for campaign targeting.
    DeviceField {
        DeviceId = "device_id": Str,
        Username = "username": Str,
        UserId = "user_id": Str,
        FriendlyName = "friendly_name": Str,
        Platform = "platform": Str,
        Arch = "arch": Str,
        OsVersion = "os_version": Str,
        ClientVersion = "client_version": Str,
        Timezone = "timezone": Str,
        Online = "online": Bool,
        RegisteredAt = "registered_at": Int,
    }
);
