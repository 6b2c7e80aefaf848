variables {
  deployment_name  = "spark"
  deployment_owner = "ld14"
  worker_count     = 3
  image_name       = "hail-base"
  image_version    = "1.0.0"
}

run "names_from_name_and_owner" {
  command = plan

  assert {
    condition     = output.prefix == "spark-ld14" && output.master_name == "spark-ld14-master"
    error_message = "Expected prefix spark-ld14 and master spark-ld14-master, got ${output.prefix} and ${output.master_name}."
  }

  assert {
    condition     = output.worker_names == ["spark-ld14-worker-001", "spark-ld14-worker-002", "spark-ld14-worker-003"]
    error_message = "Workers must be numbered from 001 with three digits, got ${jsonencode(output.worker_names)}."
  }

  assert {
    condition = (
      output.keypair_name == "spark-ld14-key"
      && output.secgroup_names.external == "spark-ld14-external"
      && output.secgroup_names.internal == "spark-ld14-internal"
      && output.network_names.router == "spark-ld14-router"
      && output.volume_name == "spark-ld14-master-tmp"
    )
    error_message = "Every resource name must start with the prefix."
  }
}

run "metadata_and_tags" {
  command = plan

  assert {
    condition = output.metadata == {
      "hgi-spark-deployment"    = "spark/ld14"
      "hgi-spark-name"          = "spark"
      "hgi-spark-owner"         = "ld14"
      "hgi-spark-image"         = "hail-base"
      "hgi-spark-image-version" = "1.0.0"
    }
    error_message = "Unexpected metadata: ${jsonencode(output.metadata)}."
  }

  assert {
    condition     = output.role_metadata.master["hgi-spark-role"] == "master" && output.role_metadata.worker["hgi-spark-role"] == "worker"
    error_message = "Each role's metadata must name the role."
  }

  assert {
    condition     = output.tags == tolist(["hgi-spark-image-version=1.0.0", "hgi-spark-image=hail-base", "hgi-spark-name=spark", "hgi-spark-owner=ld14"])
    error_message = "Unexpected tags: ${jsonencode(output.tags)}."
  }

  assert {
    condition     = alltrue([for t in output.tags : length(t) <= 60 && !strcontains(t, "/") && !strcontains(t, ",")])
    error_message = "Nova tags hold at most 60 characters and no '/' or ','."
  }
}

run "no_image_no_image_metadata" {
  command = plan

  variables {
    image_name    = ""
    image_version = ""
  }

  assert {
    condition     = keys(output.metadata) == ["hgi-spark-deployment", "hgi-spark-name", "hgi-spark-owner"]
    error_message = "Without an image, only deployment and owner are recorded."
  }
}

# A worker's name is its server name and hostname, and part of its ForceNew user-data: growing the
# cluster must never rename a running worker. 99 -> 100 is where a count-following width broke.
run "ninety_nine_workers" {
  command = plan

  variables {
    worker_count = 99
  }

  assert {
    condition     = output.worker_names[0] == "spark-ld14-worker-001" && output.worker_names[98] == "spark-ld14-worker-099"
    error_message = "99 workers are numbered 001 .. 099, got ${output.worker_names[0]} .. ${output.worker_names[98]}."
  }
}

run "one_hundred_workers_keep_the_first_99_names" {
  command = plan

  variables {
    worker_count = 100
  }

  assert {
    condition     = output.worker_names[0] == run.ninety_nine_workers.worker_names[0]
    error_message = "Worker 1 must keep its name when the count grows from 99 to 100: ${run.ninety_nine_workers.worker_names[0]} became ${output.worker_names[0]}."
  }

  assert {
    condition     = slice(output.worker_names, 0, 99) == run.ninety_nine_workers.worker_names && output.worker_names[99] == "spark-ld14-worker-100"
    error_message = "Growing from 99 to 100 must only add spark-ld14-worker-100."
  }

  assert {
    condition     = length(distinct(output.worker_names)) == 100
    error_message = "Worker names must be unique."
  }
}

run "nine_workers_have_three_digits" {
  command = plan

  variables {
    worker_count = 9
  }

  assert {
    condition     = output.worker_names[8] == "spark-ld14-worker-009"
    error_message = "Three digits whatever the count, got ${output.worker_names[8]}."
  }
}

run "the_most_workers" {
  command = plan

  variables {
    worker_count = 999
  }

  assert {
    condition     = output.worker_names[998] == "spark-ld14-worker-999" && length(output.worker_names[998]) == length(output.worker_names[0])
    error_message = "999 workers fit in three digits, got ${output.worker_names[998]}."
  }
}

run "a_thousand_workers_is_refused" {
  command = plan
  variables {
    worker_count = 1000
  }
  expect_failures = [var.worker_count]
}

run "no_workers" {
  command = plan

  variables {
    worker_count = 0
  }

  assert {
    condition     = output.worker_names == []
    error_message = "Zero workers give no worker names."
  }
}

run "folder_characters_become_hostname_safe" {
  command = plan

  variables {
    deployment_name  = "spark_test"
    deployment_owner = "a.b"
  }

  assert {
    condition     = output.master_name == "spark-test-a-b-master" && output.metadata["hgi-spark-deployment"] == "spark_test/a.b"
    error_message = "Names use '-' for '_' and '.', metadata keeps the folder's spelling; got ${output.master_name}."
  }
}

run "uppercase_name_is_refused" {
  command = plan
  variables {
    deployment_name = "Spark"
  }
  expect_failures = [var.deployment_name]
}

run "owner_with_slash_is_refused" {
  command = plan
  variables {
    deployment_owner = "ld14/x"
  }
  expect_failures = [var.deployment_owner]
}

run "negative_count_is_refused" {
  command = plan
  variables {
    worker_count = -1
  }
  expect_failures = [var.worker_count]
}

run "fractional_count_is_refused" {
  command = plan
  variables {
    worker_count = 1.5
  }
  expect_failures = [var.worker_count]
}

run "bad_image_version_is_refused" {
  command = plan
  variables {
    image_version = "latest"
  }
  expect_failures = [var.image_version]
}

run "too_long_for_a_hostname_is_refused" {
  command = plan
  variables {
    deployment_owner = "an-owner-name-that-is-far-too-long-for-any-hostname-label"
  }
  expect_failures = [output.prefix]
}
