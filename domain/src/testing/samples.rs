//! One event of every type, with plausible contents.

use std::collections::BTreeMap;

use crate::events::*;
use crate::ids::*;
use crate::model::*;

pub fn one_of_each() -> Vec<Event> {
    let t = TenantId::new(1_700_000_000_000, 1);
    let tenant = TenantRef::Tenant(t);
    let admin_id = AdminId::new(1_700_000_000_000, 2);
    let user_id = UserId::new(1_700_000_000_000, 3);
    let policy_id = PolicyId::new(1_700_000_000_000, 4);
    let item_id = ItemId::new(1_700_000_000_000, 5);
    let vault_id = VaultId::new(1_700_000_000_000, 6);
    let schedule_id = ScheduleId::new(1_700_000_000_000, 7);
    let device_id = DeviceId::new(1_700_000_000_000, 8);
    let job_id = JobId::new(1_700_000_000_000, 9);
    let at = 1_700_000_000;
    let tenant_spec = TenantSpec {
        name: "Acme".into(),
        slug: "acme".into(),
        hosts: vec![],
        suspended: false,
    };
    let email = EmailSettings {
        mode: EmailMode::SmtpTls,
        from_address: "backup@acme.test".into(),
        from_name: "Acme Backup".into(),
        host: "smtp.acme.test".into(),
        port: 465,
        username: "mailer".into(),
        password: Some("secret".into()),
        allow_invalid_cert: false,
    };
    let admin_spec = AdminSpec {
        username: "ops".into(),
        permissions: Permissions {
            allow_edit_email_options: true,
            allowed_user_policies: vec![policy_id],
            ..Permissions::default()
        },
    };
    let policy_spec = PolicySpec {
        name: "Standard".into(),
        description: "default for new users".into(),
        is_default: true,
        random_delay_secs: Some(600),
        settings: BTreeMap::from([("compression".to_owned(), SettingMode::EnforcedOn)]),
    };
    let user_spec = UserSpec {
        username: "alice@acme.test".into(),
        account_name: "Alice".into(),
        emails: vec!["alice@acme.test".into()],
        timezone: "Europe/Berlin".into(),
        language: "en".into(),
        policy: Some(policy_id),
        suspended: false,
        max_devices: Some(3),
        quota_bytes: None,
    };
    let item_spec = ItemSpec {
        name: "Documents".into(),
        engine: "files".into(),
        owner_device: Some(device_id),
        settings: BTreeMap::from([("path".to_owned(), "/home/alice".to_owned())]),
    };
    let vault_spec = VaultSpec {
        name: "Offsite".into(),
        kind: "s3".into(),
        address: "s3.old.test".into(),
        bucket: "alice".into(),
        quota_bytes: Some(1 << 40),
    };
    let schedule_spec = ScheduleSpec {
        name: "Nightly".into(),
        item: item_id,
        vault: vault_id,
        skip_if_running: true,
        triggers: vec![Trigger {
            frequency: Frequency::Cron {
                expr: "0 30 2 * * *".into(),
            },
            window: None,
            days: None,
            random_delay_secs: None,
        }],
    };
    let device_spec = DeviceSpec {
        friendly_name: "laptop".into(),
        platform: "linux".into(),
        arch: "x86_64".into(),
        os_version: "6.1".into(),
        client_version: "24.9.1".into(),
        timezone: "Europe/Berlin".into(),
    };
    vec![
        UserCreated {
            user_id,
            tenant,
            spec: user_spec.clone(),
            password_hash: "$argon2id$v=19$x".into(),
        }
        .into(),
        UserRemoved { user_id, tenant }.into(),
        UserUpdated {
            user_id,
            tenant,
            spec: user_spec,
        }
        .into(),
        UserLoggedIn {
            user_id,
            tenant,
            at,
        }
        .into(),
        UserLoginFailed {
            tenant,
            username: "alice@acme.test".into(),
            user_id: Some(user_id),
            at,
        }
        .into(),
        AdminCreated {
            admin_id,
            tenant,
            spec: admin_spec.clone(),
            password_hash: "$argon2id$v=19$y".into(),
        }
        .into(),
        AdminRemoved { admin_id, tenant }.into(),
        AdminUpdated {
            admin_id,
            tenant,
            spec: admin_spec,
        }
        .into(),
        AdminLoggedIn {
            admin_id,
            tenant,
            at,
        }
        .into(),
        AdminLoginFailed {
            tenant,
            username: "nobody".into(),
            admin_id: None,
            at,
        }
        .into(),
        JobStarted {
            job_id,
            tenant,
            user_id,
            device_id,
            item_id: Some(item_id),
            vault_id: Some(vault_id),
            schedule_id: Some(schedule_id),
            classification: Classification::Backup,
            started_at: at,
            client_version: "24.9.1".into(),
        }
        .into(),
        JobCompleted {
            job_id,
            tenant,
            user_id,
            status: JobStatus::Success,
            ended_at: at + 60,
            totals: JobTotals {
                total_bytes: 10,
                upload_bytes: 5,
                download_bytes: 0,
                total_files: 2,
                total_dirs: 1,
            },
        }
        .into(),
        ServerStarted {
            version: "0.0.0".into(),
            at,
        }
        .into(),
        TenantCreated {
            tenant_id: t,
            spec: tenant_spec.clone(),
        }
        .into(),
        TenantRemoved { tenant_id: t }.into(),
        TenantUpdated {
            tenant_id: t,
            spec: tenant_spec,
        }
        .into(),
        PolicyCreated {
            policy_id,
            tenant,
            spec: policy_spec.clone(),
        }
        .into(),
        PolicyRemoved { policy_id, tenant }.into(),
        PolicyUpdated {
            policy_id,
            tenant,
            spec: policy_spec,
        }
        .into(),
        DeviceRegistered {
            device_id,
            tenant,
            user_id,
            spec: device_spec,
            token_hash: "ab12".into(),
            at,
        }
        .into(),
        DeviceRemoved {
            device_id,
            tenant,
            user_id,
        }
        .into(),
        DeviceConnected {
            device_id,
            tenant,
            user_id,
            at,
            ip: Some("192.0.2.7".into()),
            client_version: "24.9.2".into(),
        }
        .into(),
        DeviceDisconnected {
            device_id,
            tenant,
            user_id,
            at,
        }
        .into(),
        ServerSettingsUpdated {
            settings: ServerSettings {
                random_delay_secs: Some(1800),
                ..ServerSettings::initial()
            },
        }
        .into(),
        TenantEmailUpdated {
            tenant,
            settings: email,
        }
        .into(),
        UserTransferred {
            user_id,
            from: TenantRef::Root,
            to: tenant,
            policy: None,
            online_devices: vec![device_id],
            offline_devices: vec![],
        }
        .into(),
        UserPasswordChanged {
            user_id,
            tenant,
            password_hash: "$argon2id$v=19$z".into(),
        }
        .into(),
        AdminPasswordChanged {
            admin_id,
            tenant,
            password_hash: "$argon2id$v=19$w".into(),
        }
        .into(),
        ItemCreated {
            item_id,
            tenant,
            user_id,
            spec: item_spec.clone(),
        }
        .into(),
        ItemUpdated {
            item_id,
            tenant,
            user_id,
            spec: item_spec.clone(),
        }
        .into(),
        ItemRemoved {
            item_id,
            tenant,
            user_id,
        }
        .into(),
        ItemDuplicated {
            item_id: ItemId::new(1_700_000_000_001, 5),
            source_id: item_id,
            tenant,
            user_id,
            spec: ItemSpec {
                name: "Documents (copy)".into(),
                ..item_spec
            },
        }
        .into(),
        VaultCreated {
            vault_id,
            tenant,
            user_id,
            spec: vault_spec.clone(),
        }
        .into(),
        VaultUpdated {
            vault_id,
            tenant,
            user_id,
            spec: vault_spec,
        }
        .into(),
        VaultRemoved {
            vault_id,
            tenant,
            user_id,
        }
        .into(),
        VaultAddressReplaced {
            vault_id,
            tenant,
            user_id,
            old_address: "s3.old.test".into(),
            new_address: "s3.new.test".into(),
        }
        .into(),
        ScheduleCreated {
            schedule_id,
            tenant,
            user_id,
            spec: schedule_spec.clone(),
            at,
        }
        .into(),
        ScheduleUpdated {
            schedule_id,
            tenant,
            user_id,
            spec: schedule_spec,
        }
        .into(),
        ScheduleRemoved {
            schedule_id,
            tenant,
            user_id,
        }
        .into(),
        JobProgressed {
            job_id,
            tenant,
            user_id,
            progress: JobProgress {
                bytes_done: 100,
                items_done: 2,
                items_total: 10,
            },
        }
        .into(),
        JobLogged {
            job_id,
            tenant,
            user_id,
            lines: vec![LogLine {
                at,
                severity: LogSeverity::Warning,
                text: "file changed while reading".into(),
            }],
        }
        .into(),
        JobAbandoned {
            job_id,
            tenant,
            user_id,
            at,
        }
        .into(),
        JobRevived {
            job_id,
            tenant,
            user_id,
            at,
        }
        .into(),
        JobMissed {
            job_id,
            tenant,
            user_id,
            schedule_id,
            item_id,
            vault_id,
            due_at: at,
        }
        .into(),
        JobSkipped {
            job_id,
            tenant,
            user_id,
            schedule_id,
            item_id,
            vault_id,
            due_at: at,
        }
        .into(),
        RunDispatched {
            job_id,
            tenant,
            user_id,
            schedule_id,
            device_id,
            due_at: at,
            at,
        }
        .into(),
    ]
    .into_iter()
    .chain(webhook_events(tenant, at))
    .collect()
}

fn webhook_events(tenant: TenantRef, at: i64) -> Vec<Event> {
    let webhook_id = WebhookId::new(1_700_000_000_000, 10);
    let spec = WebhookSpec {
        name: "SIEM".into(),
        url: "https://siem.acme.test/hook".into(),
        event_types: [4100, 4201].into_iter().collect(),
        level: WebhookLevel::Full,
        custom_headers: [("x-team".to_owned(), "backup".to_owned())]
            .into_iter()
            .collect(),
        enabled: true,
    };
    vec![
        WebhookCreated {
            webhook_id,
            tenant,
            spec: spec.clone(),
            secret_fingerprint: "00112233445566778899aabbccddeeff".into(),
        }
        .into(),
        WebhookUpdated {
            webhook_id,
            tenant,
            spec: WebhookSpec {
                level: WebhookLevel::None,
                ..spec
            },
        }
        .into(),
        WebhookSecretRotated {
            webhook_id,
            tenant,
            secret_fingerprint: "ffeeddccbbaa99887766554433221100".into(),
            previous_valid_until: at + 3600,
        }
        .into(),
        WebhookDisabled {
            webhook_id,
            tenant,
            reason: "410 Gone".into(),
            at,
        }
        .into(),
        WebhookRemoved { webhook_id, tenant }.into(),
    ]
}
